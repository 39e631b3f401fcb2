"""Known captions near a query: caption→caption search, and annotation of a photo (photo→caption)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.services.filters import Page
from app.services.index_cache import RawHit
from app.services.query_vectors import ImageQuery
from app.services.ranking import candidates_for
from app.services.search import SearchService
from app.storage import repository as repo
from app.storage.tables import Caption
from models.errors import NotReadyError


@dataclass
class CaptionHit:
    caption: Caption
    score: float
    rank_score: float | None = None  # cosine − hubness offset, for models with a query bank


class CaptionService:
    """Shares the search service's query vectors, served indexes and bank ranking."""

    def __init__(self, search: SearchService) -> None:
        self.search = search

    @property
    def model_key(self) -> str:
        return self.search.model_key

    def page(self, k: int | None = None) -> Page:
        return self.search.page(k)

    def search_captions(
        self, query: str, *, k: int | None = None, within: frozenset[int] | None = None
    ) -> list[CaptionHit]:
        """Known captions nearest to a text query (caption→caption), with their photos' ids; only
        captions of the collections `within` (the request key's; None: all)."""
        page = self.search.page(k)
        return self.captions_near(self.search.vectors.text_vector(query), k=page.k, within=within)

    def annotate(
        self, query: ImageQuery, *, k: int | None = None, within: frozenset[int] | None = None
    ) -> list[CaptionHit]:
        """The known captions that best describe a photo."""
        page = self.search.page(k)
        vector = self.search.vectors.image_vector(query, within)
        return self.captions_near(vector, k=page.k, normalise=True, within=within)

    def captions_near(
        self, vector: np.ndarray, *, k: int, normalise: bool = False, within: frozenset[int] | None = None
    ) -> list[CaptionHit]:
        """The k known captions nearest to a query vector, best first. normalise (photo queries): rank
        by cosine minus each caption's hubness offset when the model has a query bank."""
        fetch = candidates_for(k, self.search.encoder, normalise)
        collection_ids = None if within is None else sorted(within)
        raw: list[RawHit] = self.search.indexes.search("captions", vector, fetch, collection_ids)
        if not raw and not self.search.indexes.current("captions"):
            raise NotReadyError(
                "no captions are indexed: attach some with `photosearch index PATH --captions FILE`"
            )
        ranks: dict[int, float] = {}
        if normalise:
            raw, ranks = self.search.bank.order("captions", raw)
        raw = raw[:k]
        with self.search.sessions() as session:
            captions = repo.get_captions(session, ids=[h.id for h in raw])
        return [CaptionHit(captions[h.id], h.score, ranks.get(h.id)) for h in raw if h.id in captions]
