"""A served index made of a base FAISS file and small delta segments on top of it.

A delta holds the vectors added or changed since the base (with their ids) and the ids removed since.
Later deltas win: an id re-added or removed by a later delta is dropped from the base and from every
earlier delta, so a changed photo is served with its new vector only. The base is searched with the
dropped ids filtered out (fetching wider until k survive); the live delta rows form one exact Flat
index, built in memory when the build is loaded. Search results are the same as from one index built
afresh from the same vectors, exactly so for a Flat base.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from app.storage.vector_index import IndexFileError, IndexPlan, build_index, search, write_bytes_atomic

__all__ = ["Delta", "LayeredIndex", "read_delta", "write_delta"]

_FLAT = IndexPlan("flat", "Flat")  # deltas are small: searched exactly


@dataclass(frozen=True)
class Delta:
    ids: np.ndarray  # (m,) int64: added or changed since the base
    vectors: np.ndarray  # (m, dim) float32
    removed: np.ndarray  # (r,) int64: no longer served


def write_delta(delta: Delta, path: Path) -> None:
    """One `.npz` file, written atomically (temp file, fsync, rename)."""
    buffer = io.BytesIO()
    np.savez(buffer, ids=delta.ids.astype(np.int64), vectors=delta.vectors.astype(np.float32),
             removed=delta.removed.astype(np.int64))  # fmt: skip
    write_bytes_atomic(buffer.getvalue(), path)


def read_delta(path: Path) -> Delta:
    if not path.is_file():
        raise IndexFileError(f"index segment missing: {path}; run `photosearch index` to rebuild it")
    try:
        with np.load(path) as data:
            return Delta(data["ids"], data["vectors"], data["removed"])
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFileError(f"index segment unreadable: {path}: {exc}") from exc


def superseded(deltas: Sequence[Delta]) -> list[np.ndarray]:
    """For the base and each delta (len(deltas) + 1 arrays): the sorted ids a later delta replaces
    or removes, which that part must not serve."""
    later: list[np.ndarray] = [np.zeros(0, np.int64)]
    for delta in reversed(deltas):
        later.append(np.union1d(later[-1], np.union1d(delta.ids, delta.removed)))
    return list(reversed(later))


class LayeredIndex:
    """Base (any kind, possibly memory-mapped) plus deltas, searched as one index."""

    def __init__(self, base: faiss.Index | None, deltas: Sequence[Delta], dim: int) -> None:
        dropped = superseded(deltas)
        self.base = base
        self.deltas = list(deltas)
        self.dropped = dropped[0]  # (d,) sorted: ids of the base not served
        live = [_live_rows(delta, hidden) for delta, hidden in zip(deltas, dropped[1:], strict=True)]
        ids = np.concatenate([rows[0] for rows in live]) if live else np.zeros(0, np.int64)
        vectors = np.concatenate([rows[1] for rows in live]) if live else np.zeros((0, dim), np.float32)
        self.delta_ids = ids
        self.recent = build_index(vectors.reshape(-1, dim), ids, _FLAT)
        self._base_live: int | None = None

    @property
    def ntotal(self) -> int:
        """Vectors served (base rows not dropped plus live delta rows)."""
        if self._base_live is None:
            self._base_live = len(self._base_ids()) - int(np.isin(self._base_ids(), self.dropped).sum())
        return self._base_live + len(self.delta_ids)

    def ids(self) -> np.ndarray:
        """(ntotal,) every id served."""
        base = self._base_ids()
        return np.concatenate([base[~np.isin(base, self.dropped)], self.delta_ids])

    def reconstruct(self, item_id: int) -> np.ndarray:
        """The served vector of `item_id` (the newest delta's when one holds it)."""
        if item_id in set(self.delta_ids.tolist()):
            return np.asarray(self.recent.reconstruct(item_id))
        if self.base is None or np.isin(item_id, self.dropped):
            raise KeyError(item_id)
        return np.asarray(self.base.reconstruct(item_id))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) → (scores (q, k'), ids (q, k')) best first, k' = min(k, vectors served)."""
        parts = [search(self.recent, queries, k)]
        if self.base is not None:
            parts.append(self._search_base(queries, k))
        scores = np.concatenate([p[0] for p in parts], axis=1)
        ids = np.concatenate([p[1] for p in parts], axis=1)
        scores = np.where(ids >= 0, scores, -np.inf)
        width = min(k, int((ids >= 0).sum(axis=1).max(initial=0)))  # no column of padding only
        order = np.argsort(-scores, axis=1, kind="stable")[:, :width]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def _search_base(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The base's best k per query that no delta drops: fetched wider until k survive."""
        assert self.base is not None
        fetch = k + min(len(self.dropped), k)
        while True:
            scores, ids = search(self.base, queries, fetch)
            kept = (ids >= 0) & ~np.isin(ids, self.dropped)
            if kept.sum(axis=1).min(initial=k) >= k or fetch >= self.base.ntotal:
                break
            fetch *= 4
        scores = np.where(kept, scores, -np.inf)
        ids = np.where(kept, ids, -1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def _base_ids(self) -> np.ndarray:
        if self.base is None:
            return np.zeros(0, np.int64)
        id_map: Any = self.base.id_map  # type: ignore[attr-defined]  # an IndexIDMap2 (faiss is untyped)
        return faiss.vector_to_array(id_map).astype(np.int64)


def _live_rows(delta: Delta, hidden: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isin(delta.ids, hidden)
    return delta.ids[keep].astype(np.int64), delta.vectors[keep].astype(np.float32)
