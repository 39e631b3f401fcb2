"""Candidate photos for a query vector: the served indexes searched under a search's filters."""

from __future__ import annotations

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.services.filters import SearchFilters
from app.services.index_cache import IndexCache, RawHit
from app.storage import repository as repo
from app.storage.repository.metadata_filters import MetadataFilter, photo_ids_matching
from app.storage.repository.search import collection_ids_by_name
from app.storage.stored_models import not_indexed_reason
from models.encoder import Encoder
from models.errors import NotFoundError, NotReadyError


class PhotoCandidates:
    # At most this many photos pass the metadata filters: exact scores over their stored vectors; more,
    # and the index is searched ever wider until enough of them turn up.
    EXACT_MAX = 5_000

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
        """Up to `wanted` photos passing the filters, best cosine first (as many more are fetched as
        photos are excluded, so that exclusion does not shorten the list)."""
        fetch = wanted + len(filters.exclude)
        collection_ids = self.collection_ids(filters.collections, filters.within)
        if filters.by_metadata:
            raw = self._restricted(vector, fetch, collection_ids, filters)
        else:
            raw = self.indexes.search("photos", vector, fetch, collection_ids)
        if not raw and not self.indexes.current("photos"):
            raise NotReadyError(not_indexed_reason(self.encoder, self.sessions))
        floor = filters.min_score
        return [h for h in raw if h.id not in filters.exclude and (floor is None or h.score >= floor)]

    def _restricted(
        self, vector: np.ndarray, wanted: int, collection_ids: list[int] | None, filters: SearchFilters
    ) -> list[RawHit]:
        """The best of the photos SQL allows: exact scores over their stored vectors when few, so that a
        filter matching 3 photos of many still returns those 3."""
        metadata = MetadataFilter(
            collection_ids=collection_ids,
            tags=filters.tags,
            taken_after=filters.taken_after,
            taken_before=filters.taken_before,
            folders=filters.folders,
            cameras=filters.cameras,
        )
        with self.sessions() as session:
            allowed = photo_ids_matching(session, wanted=metadata)
            if not allowed:
                return []
            if len(allowed) <= self.EXACT_MAX:
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
