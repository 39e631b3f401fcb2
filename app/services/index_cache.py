"""The served FAISS indexes: loaded once, swapped when the indexer records a newer build."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.storage.repository import latest_index_builds
from app.storage.vector_index import read_index, search


@dataclass
class LoadedIndex:
    build_id: int
    collection_id: int
    index: faiss.Index


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
                    loaded = LoadedIndex(
                        build.id, build.collection_id, read_index(Path(build.path), self._mmap)
                    )
                    self._loaded[key] = loaded
                result.append(loaded)
        return result

    def search(
        self, kind: str, query: np.ndarray, k: int, collection_ids: list[int] | None = None
    ) -> list[RawHit]:
        """query (dim,) → the best k hits over every matching collection, best first."""
        hits: list[RawHit] = []
        for loaded in self.current(kind, collection_ids):
            scores, ids = search(loaded.index, query[None, :], k)
            hits.extend(
                RawHit(int(i), float(s), loaded.collection_id)
                for s, i in zip(scores[0], ids[0], strict=True)
                if i >= 0
            )
        hits.sort(key=lambda hit: -hit.score)
        return hits[:k]

    def total(self, kind: str) -> int:
        return sum(loaded.index.ntotal for loaded in self.current(kind))
