"""A real `photosearch index` killed with SIGKILL at several points and run again loses no photo,
duplicates none, and ends with the served index equal to the SQL vectors."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sqlalchemy import select

from app.services.index_cache import IndexCache
from app.storage.db import make_engine, session_factory
from app.storage.tables import Photo, PhotoEmbedding
from indexer.kill_points import ENVIRONMENT_VARIABLE
from models.clip.encoder import random_clip_encoder
from models.clip.export import write_local_dir
from models.clip.tiny import tiny_clip_config
from models.registry import create_encoder

PHOTOSEARCH = shutil.which("photosearch", path=str(Path(sys.executable).parent))


@pytest.fixture
def tiny_model(tmp_path: Path) -> str:
    folder = write_local_dir(random_clip_encoder(tiny_clip_config(), torch.device("cpu")), tmp_path / "tiny")
    return f"local-dir:{folder}"


def _index(folder: Path, env: dict[str, str], kill_at: str | None) -> int:
    run_env = {**env, ENVIRONMENT_VARIABLE: kill_at} if kill_at else env
    assert PHOTOSEARCH is not None
    done = subprocess.run(
        [PHOTOSEARCH, "index", str(folder), "--captions", str(folder / "captions.jsonl")],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr
    return done.returncode


def _state(db_url: str) -> tuple[list[str], dict[int, np.ndarray]]:
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        paths = list(session.scalars(select(Photo.path)))
        vectors = {
            e.photo_id: np.frombuffer(e.vector, np.float32) for e in session.scalars(select(PhotoEmbedding))
        }
    engine.dispose()
    return paths, vectors


def _served(db_url: str, model_key: str) -> dict[int, np.ndarray]:
    engine = make_engine(db_url)
    served: dict[int, np.ndarray] = {}
    for loaded in IndexCache(session_factory(engine), model_key).current("photos"):
        for photo_id in loaded.index.ids():
            served[int(photo_id)] = loaded.index.reconstruct(int(photo_id))
    engine.dispose()
    return served


@pytest.mark.slow
def test_sigkill_at_several_points_loses_and_duplicates_nothing(
    db_url: str, tmp_path: Path, photo_folder: Path, tiny_model: str
) -> None:
    env = {
        **os.environ,
        "PHOTOSEARCH_DATA_DIR": str(tmp_path / "data"),
        "PHOTOSEARCH_DATABASE_URL": db_url,
        "PHOTOSEARCH_MODEL": tiny_model,
        "PHOTOSEARCH_DEVICE": "cpu",
        "PHOTOSEARCH_INDEXER__WORKERS": "0",
        "PHOTOSEARCH_INDEXER__BATCH_SIZE": "2",
    }
    embedded = []
    for kill_at in ("batch:1", "batch:2", "faiss-written:1"):
        assert _index(photo_folder, env, kill_at) == -signal.SIGKILL
        paths, vectors = _state(db_url)
        assert sorted(paths) == sorted(set(paths)) and len(paths) == 12  # every photo, once
        embedded.append(len(vectors))
    assert embedded == [2, 6, 12]  # each run went on from the last committed batch

    assert _index(photo_folder, env, None) == 0
    paths, vectors = _state(db_url)
    assert len(paths) == 12 and len(vectors) == 12
    served = _served(db_url, create_encoder(tiny_model, device="cpu").key)
    assert served.keys() == vectors.keys()
    assert all(np.allclose(served[i], vectors[i], atol=1e-6) for i in vectors)
