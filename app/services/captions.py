"""Known captions near a query: caption→caption search, and annotation of a photo (photo→caption).

Annotation draws on two sources: the captions attached to the request key's collections
(`photosearch index --captions`), and the model's caption bank, the captions it was trained on
(app/services/model_captions.py), so that a photo in a collection nobody captioned is described too.
Both are ranked the same way and merged: by cosine − hubness offset when the model has a query bank
(models/query_bank.py; the bank's captions get their offsets against the same bank photos), else by
cosine. When the query is an indexed photo, its own collection captions come first: they were written
for it."""

from __future__ import annotations

from collections.abc import Collection as Set
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from app.services.filters import Page
from app.services.index_cache import RawHit
from app.services.model_captions import ModelCaptions
from app.services.query_vectors import ImageQuery
from app.services.ranking import candidates_for
from app.services.search import SearchService
from app.storage import repository as repo
from app.storage.tables import Caption
from models.errors import NotReadyError

CaptionSource = Literal["collection", "model"]
ALL_SOURCES: tuple[CaptionSource, ...] = get_args(CaptionSource)


@dataclass
class CaptionHit:
    text: str
    score: float
    rank_score: float | None = None  # cosine − hubness offset, for models with a query bank
    source: CaptionSource = "collection"
    caption_id: int | None = None  # collection captions only
    photo_id: int | None = None

    @classmethod
    def of_row(cls, caption: Caption, score: float, rank_score: float | None = None) -> CaptionHit:
        return cls(caption.text, score, rank_score, "collection", caption.id, caption.photo_id)

    @property
    def order(self) -> float:
        return self.score if self.rank_score is None else self.rank_score


class CaptionService:
    """Shares the search service's query vectors, served indexes and bank ranking."""

    def __init__(self, search: SearchService, model_captions: ModelCaptions) -> None:
        self.search = search
        self.model_captions = model_captions

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
        self,
        query: ImageQuery,
        *,
        k: int | None = None,
        within: frozenset[int] | None = None,
        sources: Set[CaptionSource] = ALL_SOURCES,
        collections: tuple[str, ...] = (),
    ) -> list[CaptionHit]:
        """The captions that best describe a photo, from the collections `within` (the key's; narrowed to
        the named `collections` when given) and the model's bank."""
        page = self.search.page(k)
        self.check_sources(sources)
        named = self.search.candidates.collection_ids(collections, within) if collections else None
        vector = self.search.vectors.image_vector(query, within)
        hits: list[CaptionHit] = []
        if "collection" in sources and self.search.indexes.current("captions"):
            scope = within if named is None else frozenset(named)
            hits += self.captions_near(vector, k=page.k, normalise=True, within=scope)
        if "model" in sources:
            hits += self.bank_captions(vector, page.k)
        hits.sort(key=lambda h: -h.order)
        if query.photo_id is not None and "collection" in sources:
            hits = self.own_captions_first(query.photo_id, hits, vector, named)
        return hits[: page.k]

    def check_sources(self, sources: Set[CaptionSource]) -> None:
        """NotReadyError (503) when none of the asked-for sources can answer."""
        if "model" in sources and self.model_captions.available:
            return
        if "collection" in sources and self.search.indexes.current("captions"):
            return
        bank = "" if self.model_captions.available else f"model {self.model_key} has no caption bank, and "
        if "collection" not in sources:
            raise NotReadyError(
                f"model {self.model_key} has no caption bank (a <checkpoint>.captions.txt.gz beside its "
                "checkpoint): ask for collection captions instead"
            )
        raise NotReadyError(
            f"{bank}no captions are indexed: attach some with `photosearch index PATH --captions FILE`"
        )

    def bank_captions(self, vector: np.ndarray, k: int) -> list[CaptionHit]:
        """The k best captions of the model's caption bank (none when it has no bank)."""
        bank = self.model_captions.bank()
        if bank is None:
            return []
        return [CaptionHit(bank.texts[i], score, rank, "model") for i, score, rank in bank.nearest(vector, k)]

    def own_captions_first(
        self, photo_id: int, hits: list[CaptionHit], vector: np.ndarray, named: list[int] | None
    ) -> list[CaptionHit]:
        """An indexed photo's own collection captions (best first among them) ahead of the rest, unless
        the request named collections that leave the photo's own out."""
        search = self.search
        with search.sessions() as session:
            photo = repo.get_photo(session, photo_id=photo_id)
            if photo is None or (named is not None and photo.collection_id not in named):
                return hits
            rows = {c.id: c for c in photo.captions}
            ids, vectors = repo.caption_vectors_for_ids(
                session, ids=list(rows), model_key=search.encoder.key, dim=search.encoder.dim
            )
        if not len(ids):
            return hits
        scores = vectors @ vector  # (n,)
        raw = sorted(
            (RawHit(int(i), float(s), photo.collection_id) for i, s in zip(ids, scores, strict=True)),
            key=lambda h: -h.score,
        )
        raw, ranks = search.bank.order("captions", raw)
        own = [CaptionHit.of_row(rows[h.id], h.score, ranks.get(h.id)) for h in raw]
        return own + [h for h in hits if h.photo_id != photo_id]

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
        return [CaptionHit.of_row(captions[h.id], h.score, ranks.get(h.id)) for h in raw if h.id in captions]
