"""A publish SIGKILLed right after writing a delta or a merged base (before recording it) leaves the
previous build served and consistent; the next run serves every SQL vector once and sweeps the
unrecorded file. The killed publish is a real process, as a power cut would leave it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from indexer import publish as publishing
from indexer.kill_points import ENVIRONMENT_VARIABLE
from tests.builders.vector_collections import VectorCollection

REPO = Path(__file__).resolve().parents[2]
PUBLISH = """
import sys
from pathlib import Path
from app.core.config import IndexerSettings
from tests.builders.vector_collections import VectorCollection
settings = IndexerSettings(flat_max_vectors=int(sys.argv[3]))
VectorCollection(sys.argv[1], Path(sys.argv[2]), settings=settings).publish()
"""


def publish_killed_at(point: str, photos: VectorCollection) -> None:
    env = {**os.environ, ENVIRONMENT_VARIABLE: f"{point}:1"}
    args = [photos.db_url, str(photos.index_dir), str(photos.settings.flat_max_vectors)]
    done = subprocess.run(
        [sys.executable, "-c", PUBLISH, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def assert_served_once_each(photos: VectorCollection) -> None:
    served = photos.served().ids().tolist()
    assert sorted(served) == sorted(photos.sql_vectors())


def test_sigkill_after_a_delta_or_a_merge_is_written_loses_and_duplicates_nothing(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.core.config import IndexerSettings

    photos = VectorCollection(db_url, tmp_path / "index", settings=IndexerSettings(flat_max_vectors=25))
    photos.add(20)
    photos.publish()
    served_first = sorted(photos.served().ids().tolist())

    photos.add(3)
    publish_killed_at("delta-written", photos)
    assert sorted(photos.served().ids().tolist()) == served_first  # the old build, searchable

    photos.add(5)  # 28 vectors: past flat_max_vectors, so the next publish merges into HNSW
    publish_killed_at("merge-written", photos)
    assert sorted(photos.served().ids().tolist()) == served_first
    assert len(list(photos.folder.glob("*.delta.npz"))) == 1 and len(list(photos.folder.glob("*.faiss"))) == 2
    assert len(photos.builds()) == 1

    monkeypatch.setattr(publishing, "UNRECORDED_GRACE_S", 0.0)
    assert photos.publish() == ("hnsw", 28)
    assert_served_once_each(photos)
    recorded = {Path(b.path) for b in photos.builds()} | {
        Path(b.path).with_suffix(".ids.npy") for b in photos.builds()
    }
    assert set(photos.folder.iterdir()) == recorded  # the killed runs' files are gone
