"""Photo search: text→photo and photo→photo, under a search's filters. Knows nothing of HTTP.

The pieces live in their own modules: query vectors and their checks (query_vectors.py), candidate
retrieval under filters (retrieval.py), ordering by query bank and re-ranker (ranking.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.dedup import DEDUP_POOL_GROWTH, DEDUP_POOL_MAX, DuplicateGrouping, Group, dedup_pool
from app.services.filters import NO_FILTERS, Page, SearchFilters, page_of
from app.services.index_cache import IndexCache, RawHit
from app.services.limits import HeavyWorkGate
from app.services.listing import PhotoLister
from app.services.query_mix import mixed_vector
from app.services.query_terms import is_plain, query_terms
from app.services.query_vectors import ImageQuery, QueryVectors
from app.services.ranking import BankRanking, PhotoDecoding, PhotoHit, candidates_for, rerank
from app.services.retrieval import PhotoCandidates
from app.storage import repository as repo
from app.storage.repository.metadata_filters import taken_at_of
from app.storage.stored_models import not_indexed_reason
from models.encoder import Encoder

__all__ = ["ImageQuery", "PhotoHit", "SearchService"]

SORT_POOL = 300  # date order covers this many best matches when no min_score says which are relevant
SORT_POOL_MAX = 10_000  # and at most this many above a min_score


class SearchService:
    def __init__(
        self,
        settings: Settings,
        encoder: Encoder,
        sessions: sessionmaker[Session],
        gate: HeavyWorkGate | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.sessions = sessions
        self.gate = gate or HeavyWorkGate(settings.api.heavy_slots, settings.api.busy_wait_s)
        self.indexes = IndexCache(sessions, encoder.key)
        self.vectors = QueryVectors(settings, encoder, sessions, self.gate)
        self.candidates = PhotoCandidates(sessions, encoder, self.indexes)
        self.bank = BankRanking(sessions, encoder)
        self.listing = PhotoLister(sessions, self.candidates)
        self.duplicates = DuplicateGrouping(sessions, encoder.key, encoder.dim, settings.api.dedup_threshold)

    @property
    def model_key(self) -> str:
        return self.encoder.key

    def page(self, k: int | None = None, offset: int | None = None) -> Page:
        return page_of(self.settings.api, k, offset)

    def search_text(
        self,
        query: str,
        *,
        k: int | None = None,
        offset: int = 0,
        filters: SearchFilters = NO_FILTERS,
        photo_ids: tuple[Sequence[int], Sequence[int]] = ((), ()),
        dedup: bool = True,
    ) -> list[PhotoHit]:
        """Photos that best match a description, ordered by the model's re-ranker when it has one.
        The query may add and subtract weighted terms ("dog + 2:beach - snow") and indexed photos
        (photo_ids: positive, negative; never results themselves); a plain query is embedded as it is.
        dedup: near-identical photos are one hit (dedup.py); the re-ranker then orders the groups by
        their leading photo."""
        page = self.page(k, offset)
        vector, plain = self.query_vector(query, photo_ids, filters.within)
        examples = frozenset(photo_ids[0]) | frozenset(photo_ids[1])
        if examples:  # the photos given as examples are not results
            filters = replace(filters, exclude=filters.exclude | examples)
        reranker = self.encoder.reranker
        if reranker is None or filters.sort != "relevance" or not plain:
            return self.photos_near(vector, page, filters, normalise=True, dedup=dedup)
        wide = Page(max(reranker.top_n, page.k + page.offset))
        hits = self.photos_near(vector, wide, filters, normalise=True, dedup=dedup)
        decoding = PhotoDecoding(
            self.settings.indexer.max_image_pixels, 2 * self.encoder.preprocess.image_size
        )
        ranked = rerank(reranker, self.vectors.checked_text(query), hits, self.gate, decoding)
        return ranked[page.offset : page.offset + page.k]

    def query_vector(
        self, query: str, photo_ids: tuple[Sequence[int], Sequence[int]], within: frozenset[int] | None
    ) -> tuple[np.ndarray, bool]:
        """(unit vector, whether the query was plain text: one term, no weight, no photos)."""
        if query.strip():
            self.vectors.checked_text(query)  # the whole query's checks (length, NUL) as before
        terms = query_terms(query) if query.strip() else []
        if not any(photo_ids) and (not terms or is_plain(terms, query)):  # empty: text_vector's own message
            return self.vectors.text_vector(query), True
        return mixed_vector(self.vectors, terms, photo_ids, within), False

    def search_image(
        self,
        query: ImageQuery,
        *,
        k: int | None = None,
        offset: int = 0,
        filters: SearchFilters = NO_FILTERS,
        dedup: bool = True,
    ) -> list[PhotoHit]:
        """Photos that look like an upload or an indexed photo; the query photo itself is left out
        (its copies are not: they are hits, near-identical ones one hit when dedup)."""
        page = self.page(k, offset)
        vector = self.vectors.image_vector(query, filters.within)
        if query.photo_id is not None:
            filters = replace(filters, exclude=filters.exclude | {query.photo_id})
        return self.photos_near(vector, page, filters, dedup=dedup)

    def photos_near(
        self,
        vector: np.ndarray,
        page: Page,
        filters: SearchFilters = NO_FILTERS,
        normalise: bool = False,
        dedup: bool = False,
    ) -> list[PhotoHit]:
        """The page of best photos for a query vector. normalise (text queries): rank by cosine minus each
        photo's hubness offset when the model has a query bank, re-ordering a wider set of candidates.
        dedup: each hit stands for its near-identical photos, grouped in ranking order."""
        if filters.sort != "relevance":
            return self.photos_by_date(vector, page, filters, dedup)
        wanted = page.k + page.offset
        if dedup:
            groups, ranks = self.grouped(vector, wanted, filters, normalise)
        else:
            raw, ranks, _ = self.ranked(vector, wanted, filters, normalise)
            groups = [Group(hit) for hit in raw]
        return self.hits_of(groups[page.offset : wanted], ranks)

    def ranked(
        self, vector: np.ndarray, wanted: int, filters: SearchFilters, normalise: bool
    ) -> tuple[list[RawHit], dict[int, float], bool]:
        """(the `wanted` best candidates in ranking order, id → rank score, whether no more match)."""
        fetch = candidates_for(wanted, self.encoder, normalise)
        raw = self.candidates.fetch(vector, fetch, filters)
        every_match = len(raw) < fetch  # the index has no more under the filters
        ranks: dict[int, float] = {}
        if normalise:
            raw, ranks = self.bank.order("photos", raw)
        return raw[:wanted], ranks, every_match and len(raw) <= wanted

    def grouped(
        self, vector: np.ndarray, wanted: int, filters: SearchFilters, normalise: bool
    ) -> tuple[list[Group], dict[int, float]]:
        """At least `wanted` groups of duplicates while candidates remain: the pool of candidates grows
        until it holds that many, so that a page of a library full of copies is still full."""
        pool = dedup_pool(wanted)
        while True:
            raw, ranks, exhausted = self.ranked(vector, pool, filters, normalise)
            groups = self.duplicates.group(raw)
            if len(groups) >= wanted or exhausted or pool >= DEDUP_POOL_MAX:
                return groups, ranks
            pool = min(DEDUP_POOL_MAX, pool * DEDUP_POOL_GROWTH)

    def hits_of(self, groups: list[Group], ranks: dict[int, float] | None = None) -> list[PhotoHit]:
        """Each group as a hit: its leading photo, with the others' ids."""
        ranks = ranks or {}
        with self.sessions() as session:
            photos = repo.get_photos(session, ids=[g.leader.id for g in groups])
        return [
            PhotoHit(
                photos[g.leader.id],
                g.leader.score,
                rank_score=ranks.get(g.leader.id),
                duplicate_ids=[d.id for d in g.duplicates],
            )
            for g in groups
            if g.leader.id in photos
        ]

    def photos_by_date(
        self, vector: np.ndarray, page: Page, filters: SearchFilters, dedup: bool = False
    ) -> list[PhotoHit]:
        """The relevant candidates in date order: those at or above min_score (at most SORT_POOL_MAX), or
        the SORT_POOL best by cosine without one. Undated photos come last, in relevance order; the
        pool does not depend on the page, so pages follow on from each other. dedup: duplicates are
        grouped over the pool first, and each group goes by its leading (best-matching) photo's date."""
        pool = SORT_POOL if filters.min_score is None else SORT_POOL_MAX
        raw = self.candidates.fetch(vector, pool, filters)
        groups = self.duplicates.group(raw) if dedup else [Group(hit) for hit in raw]
        with self.sessions() as session:
            taken = taken_at_of(session, ids=[g.leader.id for g in groups])
        dated = sorted(
            (g for g in groups if taken.get(g.leader.id) is not None),
            key=lambda g: (taken[g.leader.id], -g.leader.id if filters.sort == "newest" else g.leader.id),
            reverse=filters.sort == "newest",
        )
        undated = [g for g in groups if taken.get(g.leader.id) is None]
        return self.hits_of((dated + undated)[page.offset : page.offset + page.k])

    def not_indexed_reason(self) -> str:
        return not_indexed_reason(self.encoder, self.sessions)

    def readiness(self) -> dict[str, object]:
        with self.sessions() as session:
            photos = repo.count_photos(session, status="ok")
        return {
            "model": self.encoder.key,
            "photos": photos,
            "indexed_vectors": self.indexes.total("photos"),
            "caption_vectors": self.indexes.total("captions"),
        }
