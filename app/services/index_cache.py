"""The served indexes: loaded once, swapped when the indexer records a newer build.

A build is a base FAISS file plus delta segments (app/storage/layered_index.py). Files are cached by
path: a build that adds a delta to the same base loads only the new delta, never the base again.
IVF-PQ bases (the large ones) are memory-mapped, so they live in the page cache rather than in the
server's own memory; `mmap=True` maps every base.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.storage.layered_index import Delta, LayeredIndex, read_delta
from app.storage.repository import latest_index_builds
from app.storage.tables import IndexBuild
from app.storage.vector_index import read_index

MAPPED_TYPES = frozenset({"ivfpq"})


@dataclass
class LoadedIndex:
    build_id: int
    collection_id: int
    index: LayeredIndex


@dataclass(frozen=True)
class RawHit:
    id: int
    score: float
    collection_id: int


class IndexCache:
    def __init__(self, sessions: sessionmaker[Session], model_key: str, mmap: bool = False) -> None:
        self._sessions = sessions
        self._model_key = model_key
        self._mmap = mmap
        self._loaded: dict[tuple[str, int], LoadedIndex] = {}  # (kind, collection_id)
        self._bases: dict[str, faiss.Index] = {}  # path → base in use
        self._deltas: dict[str, Delta] = {}  # path → segment in use
        self._lock = threading.Lock()

    def current(self, kind: str, collection_ids: list[int] | None = None) -> list[LoadedIndex]:
        """The newest build per collection, loading any that changed since the last call."""
        with self._sessions() as session:
            builds = latest_index_builds(
                session, model_key=self._model_key, kind=kind, collection_ids=collection_ids
            )
        result = []
        with self._lock:
            for build in builds:
                key = (kind, build.collection_id)
                loaded = self._loaded.get(key)
                if loaded is None or loaded.build_id != build.id:
                    loaded = LoadedIndex(build.id, build.collection_id, self._load(build))
                    self._loaded[key] = loaded
                    self._forget_unused()
                result.append(loaded)
        return result

    def _load(self, build: IndexBuild) -> LayeredIndex:
        base = self._bases.get(build.path)
        if base is None:
            mapped = self._mmap or build.index_type in MAPPED_TYPES
            base = self._bases[build.path] = read_index(Path(build.path), mapped)
        deltas = []
        for segment in build.segments:
            if segment.path not in self._deltas:
                self._deltas[segment.path] = read_delta(Path(segment.path))
            deltas.append(self._deltas[segment.path])
        return LayeredIndex(base, deltas, build.dim)

    def _forget_unused(self) -> None:
        """Drop files no loaded build uses any more (a merge replaced them)."""
        bases = {id(loaded.index.base) for loaded in self._loaded.values()}
        self._bases = {path: index for path, index in self._bases.items() if id(index) in bases}
        deltas = {id(delta) for loaded in self._loaded.values() for delta in loaded.index.deltas}
        self._deltas = {path: delta for path, delta in self._deltas.items() if id(delta) in deltas}

    def search(
        self, kind: str, query: np.ndarray, k: int, collection_ids: list[int] | None = None
    ) -> list[RawHit]:
        """query (dim,) → the best k hits over every matching collection, best first."""
        hits: list[RawHit] = []
        for loaded in self.current(kind, collection_ids):
            scores, ids = loaded.index.search(query[None, :], k)
            hits.extend(
                RawHit(int(i), float(s), loaded.collection_id)
                for s, i in zip(scores[0], ids[0], strict=True)
                if i >= 0
            )
        hits.sort(key=lambda hit: -hit.score)
        return hits[:k]

    def total(self, kind: str) -> int:
        return sum(loaded.index.ntotal for loaded in self.current(kind))
