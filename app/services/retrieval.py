"""Candidate photos for a query vector: the served indexes searched under a search's filters."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.services.filters import SearchFilters
from app.services.index_cache import IndexCache, RawHit
from app.storage import repository as repo
from app.storage.repository.search import collection_ids_by_name
from models.encoder import Encoder
from models.errors import NotFoundError, NotReadyError


class PhotoCandidates:
    # At most this many photos carry the wanted tags: exact scores over their stored vectors; more, and
    # the index is searched ever wider until enough tagged photos turn up.
    EXACT_TAGGED_MAX = 5_000

    def __init__(self, sessions: sessionmaker[Session], encoder: Encoder, indexes: IndexCache) -> None:
        self.sessions = sessions
        self.encoder = encoder
        self.indexes = indexes

    def collection_ids(
        self, names: tuple[str, ...], within: frozenset[int] | None = None
    ) -> list[int] | None:
        """None for every collection; NotFoundError naming those that do not exist, or that lie
        outside `within` (the request key's collections: told exactly as unknown ones)."""
        if not names:
            return None if within is None else sorted(within)
        with self.sessions() as session:
            found = collection_ids_by_name(session, names=names)
        if within is not None:
            found = {name: cid for name, cid in found.items() if cid in within}
        missing = sorted(set(names) - set(found))
        if missing:
            raise NotFoundError(f"unknown collection(s): {missing}")
        return sorted(found.values())

    def fetch(self, vector: np.ndarray, wanted: int, filters: SearchFilters) -> list[RawHit]:
        """Up to `wanted` photos passing the filters, best cosine first (one more is fetched when a
        photo is excluded, so that exclusion does not shorten the list)."""
        fetch = wanted + (1 if filters.exclude is not None else 0)
        collection_ids = self.collection_ids(filters.collections, filters.within)
        if filters.tags:
            raw = self._tagged(vector, fetch, collection_ids, filters.tags)
        else:
            raw = self.indexes.search("photos", vector, fetch, collection_ids)
        if not raw and not self.indexes.current("photos"):
            raise NotReadyError("nothing is indexed for this model yet: run `photosearch index PATH`")
        floor = filters.min_score
        return [h for h in raw if h.id != filters.exclude and (floor is None or h.score >= floor)]

    def _tagged(
        self, vector: np.ndarray, wanted: int, collection_ids: list[int] | None, tags: tuple[str, ...]
    ) -> list[RawHit]:
        with self.sessions() as session:
            allowed = repo.photo_ids_with_tags(session, tags=tags, collection_ids=collection_ids)
            if len(allowed) <= self.EXACT_TAGGED_MAX:
                ids, _, vectors = repo.photo_vectors_for_ids(
                    session, ids=sorted(allowed), model_key=self.encoder.key, dim=self.encoder.dim
                )
                scores = vectors @ vector  # (n,)
                best = np.argsort(-scores, kind="stable")[:wanted]
                return [RawHit(int(ids[i]), float(scores[i]), allowed[int(ids[i])]) for i in best]
        fetch, total = wanted * 8, self.indexes.total("photos")
        while True:
            raw = self.indexes.search("photos", vector, fetch, collection_ids)
            kept = [hit for hit in raw if hit.id in allowed]
            if len(kept) >= wanted or fetch >= total:
                return kept[:wanted]
            fetch *= 4
