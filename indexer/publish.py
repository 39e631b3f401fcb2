"""Publishing a collection's vectors as FAISS files the server reads.

A file is built from the SQL vectors, written atomically (temp file, fsync, rename) and recorded in
index_builds; the newest build is served. Each build also sweeps what a killed run left in the
collection's model folder: temp files of writers no longer running and `.faiss` files no build row
names.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.config import IndexerSettings
from app.storage import repository as repo
from app.storage.tables import IndexBuild
from app.storage.vector_index import build_index, plan_index, write_index_atomic
from indexer import kill_points
from models.encoder import Encoder

log = logging.getLogger(__name__)

KINDS = ("photos", "captions")
UNRECORDED_GRACE_S = 600.0  # a concurrent run records its file right after writing it
_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-\d+$")  # app/storage/vector_index.py write_index_atomic


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def index_folder_for(index_dir: Path, collection: str, model_key: str) -> Path:
    return index_dir / safe_name(collection) / safe_name(model_key)


def publish(
    session: Session,
    *,
    collection: str,
    collection_id: int,
    encoder: Encoder,
    kind: str,
    index_dir: Path,
    settings: IndexerSettings,
) -> tuple[str, int] | None:
    """(index type, vectors) served for `kind`, rebuilt only when the SQL vectors changed."""
    ids, vectors, signature = _current_vectors(session, collection_id, encoder, kind)
    builds = repo.latest_index_builds(
        session, model_key=encoder.key, kind=kind, collection_ids=[collection_id]
    )
    if not len(ids) and not builds:
        return None
    if builds and builds[0].signature == signature and Path(builds[0].path).is_file():
        return builds[0].index_type, len(ids)  # nothing changed since the last build
    plan = plan_index(len(ids), encoder.dim, settings.flat_max_vectors, settings.hnsw_max_vectors)
    path = index_folder_for(index_dir, collection, encoder.key) / f"{kind}-{time.time_ns()}.faiss"
    write_index_atomic(build_index(vectors, ids, plan), path)
    kill_points.reached("faiss-written")
    repo.record_index_build(
        session,
        collection_id=collection_id,
        model_key=encoder.key,
        kind=kind,
        index_type=plan.kind,
        path=path,
        vectors=len(ids),
        dim=encoder.dim,
        signature=signature,
    )
    for stale in repo.prune_index_builds(
        session, collection_id=collection_id, model_key=encoder.key, kind=kind
    ):
        Path(stale).unlink(missing_ok=True)
    return plan.kind, len(ids)


def _current_vectors(
    session: Session, collection_id: int, encoder: Encoder, kind: str
) -> tuple[np.ndarray, np.ndarray, str]:
    """ids (n,), vectors (n, dim) from SQL, and a signature of both (unchanged signature: no rebuild)."""
    fetch = repo.photo_vectors if kind == "photos" else repo.caption_vectors
    ids, vectors = fetch(session, collection_id=collection_id, model_key=encoder.key, dim=encoder.dim)
    return ids, vectors, hashlib.sha256(ids.tobytes() + vectors.tobytes()).hexdigest()


def sweep_leftovers(session: Session, *, folder: Path, collection_id: int, model_key: str) -> list[Path]:
    """Remove temp files whose writer is gone and old `.faiss` files no build row records."""
    if not folder.is_dir():
        return []
    recorded = set(
        session.scalars(
            select(IndexBuild.path).where(
                IndexBuild.collection_id == collection_id, IndexBuild.model_key == model_key
            )
        )
    )
    removed = []
    for entry in folder.iterdir():
        if _is_leftover(entry, recorded):
            entry.unlink(missing_ok=True)
            log.info("removed %s (left by an interrupted run)", entry)
            removed.append(entry)
    return removed


def _is_leftover(entry: Path, recorded: set[str]) -> bool:
    if not entry.is_file() or entry.is_symlink():
        return False
    temp = _TEMP_NAME.match(entry.name)
    if temp:
        return not _process_alive(int(temp.group(1)))
    if entry.suffix != ".faiss" or str(entry) in recorded:
        return False
    return time.time() - entry.stat().st_mtime > UNRECORDED_GRACE_S


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
