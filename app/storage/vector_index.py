"""FAISS index files: chosen by size, written atomically, searched by id.

Index ids are SQL row ids (photo id or caption id). Vectors are unit length, so the inner
product is the cosine similarity.
  flat   exact, up to `flat_max_vectors`
  hnsw   HNSW32 graph, up to `hnsw_max_vectors`
  ivfpq  IVF + PQ codes, re-ranked exactly with the full vectors (IndexRefineFlat)
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from models.errors import NotReadyError

log = logging.getLogger(__name__)

TRAIN_PER_LIST = 64
# PQ candidates re-ranked exactly for a top 10 (benchmarks/million.md: recall@10 0.91 with 80, 1.0 with 320)
REFINE_SHORTLIST = 320


class IndexFileError(NotReadyError):
    pass


@dataclass(frozen=True)
class IndexPlan:
    kind: str
    factory: str


def plan_index(n_vectors: int, dim: int, flat_max: int = 50_000, hnsw_max: int = 1_000_000) -> IndexPlan:
    if n_vectors <= flat_max:
        return IndexPlan("flat", "Flat")
    if n_vectors <= hnsw_max:
        return IndexPlan("hnsw", "HNSW32,Flat")
    lists = 1 << max(4, min(16, round(math.log2(4 * math.sqrt(n_vectors)))))
    # PQ sub-vectors of >= 8 dimensions (64 bytes a vector at 512-d), as FAISS's guidelines suggest
    sub = next((m for m in (64, 48, 32, 16, 8, 4) if dim % m == 0 and dim // m >= 8), 1)
    return IndexPlan("ivfpq", f"IVF{lists},PQ{sub},RFlat")


def build_index(vectors: np.ndarray, ids: np.ndarray, plan: IndexPlan) -> faiss.Index:
    """vectors (n, d) float32 unit rows, ids (n,) int64 → an index answering with those ids."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    dim = vectors.shape[1]
    inner = faiss.index_factory(dim, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if plan.kind == "hnsw":
        hnsw: Any = faiss.downcast_index(inner)  # faiss is untyped
        hnsw.hnsw.efConstruction = 80
    if not inner.is_trained:
        inner.train(_training_sample(vectors, inner))
    index = faiss.IndexIDMap2(inner)
    if len(vectors):
        index.add_with_ids(vectors, ids)
    return index


def _training_sample(vectors: np.ndarray, inner: faiss.Index) -> np.ndarray:
    """At most TRAIN_PER_LIST vectors per IVF list (FAISS asks for at least 39): k-means over every
    vector of a million-photo collection would take hours on a CPU for no better lists."""
    lists = faiss.extract_index_ivf(inner).nlist
    if len(vectors) <= TRAIN_PER_LIST * lists:
        return vectors
    rows = np.random.default_rng(0).choice(len(vectors), TRAIN_PER_LIST * lists, replace=False)
    return vectors[np.sort(rows)]


def write_index_atomic(index: faiss.Index, path: Path) -> None:
    """Serialize to a temp file beside the target, fsync, then rename over it."""
    write_bytes_atomic(faiss.serialize_index(index).tobytes(), path)


def write_bytes_atomic(data: bytes, path: Path) -> None:
    """Write to a temp file beside the target, fsync, then rename over it: readers see the old file
    or the whole new one. A failed write (a full disk) removes its temp file and raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_index(path: Path, mmap: bool = False) -> faiss.Index:
    if not path.is_file():
        raise IndexFileError(f"index file missing: {path}; run `photosearch index` to rebuild it")
    # MMAP_IFC maps the codes and vectors of Flat, HNSW storage and IVF lists from the page cache
    flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
    if mmap:
        _read_ahead(path)
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise IndexFileError(f"index file unreadable: {path}: {exc}") from exc
    _tune_for_search(index)
    return _to_gpu(index) if not mmap else index


def _read_ahead(path: Path) -> None:
    """Bring a memory-mapped index into the page cache in the background: the first searches then find
    their lists and vectors in memory instead of waiting on the disk a page at a time. The pages stay
    the kernel's (shared, reclaimable), not the process's. Read in a daemon thread, since the kernel's
    own read-ahead hint (posix_fadvise WILLNEED) is a no-op on some virtual disks."""
    threading.Thread(target=_read_through, args=(path,), name="index-read-ahead", daemon=True).start()


def _read_through(path: Path, chunk: int = 8 << 20) -> None:
    buffer = bytearray(chunk)
    try:
        with open(path, "rb", buffering=0) as handle:
            while handle.readinto(buffer):
                pass
    except OSError as exc:  # a file replaced or gone meanwhile: the searches read it as they go
        log.debug("read-ahead of %s stopped: %s", path, exc)


def _to_gpu(index: faiss.Index) -> faiss.Index:
    """With faiss-gpu installed and a GPU present, serve Flat and IVF indexes from GPU memory."""
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if gpus < 1 or isinstance(inner, faiss.IndexHNSW):  # HNSW has no GPU version
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except (RuntimeError, AttributeError) as exc:  # an index type without a GPU version
        log.warning("keeping the index on the CPU: %s", exc)
        return index


def _tune_for_search(index: faiss.Index) -> None:
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = 128
    elif isinstance(inner, faiss.IndexRefine):
        inner.k_factor = 8  # searches through search() ask for their own shortlist (REFINE_SHORTLIST)
        base = faiss.downcast_index(inner.base_index)
        if isinstance(base, faiss.IndexIVF):
            base.nprobe = min(64, base.nlist)


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """queries (q, d) → (scores (q, k'), ids (q, k')) with k' = min(k, ntotal), padding dropped."""
    k = min(k, index.ntotal)
    if k <= 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    scores, ids = index.search(queries, k, params=_refine_params(index, k))
    return scores, ids


def _refine_params(index: faiss.Index, k: int) -> faiss.SearchParameters | None:
    """For IVF-PQ with exact re-ranking: re-rank the best k + REFINE_SHORTLIST - 10 by PQ code (at least
    2k). The PQ order errs by a few hundred places at a million vectors, whatever k is; a shortlist of
    a fixed multiple of k would read 32 exact vectors a hit where a wide candidate pool needs 2."""
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index
    if not isinstance(inner, faiss.IndexRefine):
        return None
    params = faiss.IndexRefineSearchParameters()
    params.k_factor = max(2.0, (k + REFINE_SHORTLIST - 10) / k)
    return params
