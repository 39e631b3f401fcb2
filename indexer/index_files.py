"""The files of a collection's served index and their names: a base FAISS file, its ids beside it,
and delta segments (app/storage/layered_index.py). Every file is written atomically and recorded in
SQL only once complete; anything unrecorded is a leftover of an interrupted run (publish.sweep_leftovers).
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np

from app.storage.layered_index import Delta, write_delta
from app.storage.repository.index_builds import SegmentFile
from app.storage.tables import IndexBuild
from app.storage.vector_index import build_index, plan_index, write_bytes_atomic, write_index_atomic

INDEX_SUFFIXES = (".faiss", ".npz", ".npy")


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def index_folder_for(index_dir: Path, collection: str, model_key: str) -> Path:
    return index_dir / safe_name(collection) / safe_name(model_key)


def ids_path(base: Path | str) -> Path:
    """The base's ids (int64 .npy) beside it: what an incremental build needs to know of the base
    without reading the FAISS file (8 bytes a vector)."""
    return Path(base).with_suffix(".ids.npy")


def write_base(
    folder: Path, kind: str, ids: np.ndarray, vectors: np.ndarray, limits: tuple[int, int]
) -> tuple[str, Path]:
    """Build the base index of ids (n,) / vectors (n, dim) by size and write it with its ids file;
    returns (index type, path)."""
    plan = plan_index(len(ids), vectors.shape[1], *limits)
    path = folder / f"{kind}-{time.time_ns()}.faiss"
    write_index_atomic(build_index(vectors, ids, plan), path)
    buffer = io.BytesIO()
    np.save(buffer, ids.astype(np.int64))
    write_bytes_atomic(buffer.getvalue(), ids_path(path))
    return plan.kind, path


def write_segment(folder: Path, kind: str, delta: Delta) -> SegmentFile:
    path = folder / f"{kind}-{time.time_ns()}.delta.npz"
    write_delta(delta, path)
    return SegmentFile(str(path), len(delta.ids), len(delta.removed))


def served_ids(build: IndexBuild) -> np.ndarray | None:
    """Sorted ids the build serves, from the base's ids file and the segments' id arrays (vectors
    are not read); None when a file is missing (the build is then made afresh)."""
    try:
        served = np.load(ids_path(build.path))
        for segment in build.segments:
            with np.load(segment.path) as data:
                served = np.union1d(np.setdiff1d(served, data["removed"]), data["ids"])
    except (OSError, ValueError, KeyError):
        return None
    return np.unique(served)


def files_of(path: str) -> list[Path]:
    """A recorded path and what goes with it (a base's ids file)."""
    return [Path(path), ids_path(path)] if path.endswith(".faiss") else [Path(path)]
