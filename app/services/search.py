"""Search logic: text→photo, photo→photo, photo→caption. Knows nothing of HTTP."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.index_cache import IndexCache, RawHit
from app.storage import repository as repo
from app.storage.tables import Caption, Collection, Photo
from models.encoder import Encoder
from models.errors import InvalidInputError, NotFoundError, NotReadyError, PayloadTooLargeError
from models.images import ImageDecodeError, decode_photo

log = logging.getLogger(__name__)


@dataclass
class PhotoHit:
    photo: Photo
    score: float
    rerank_score: float | None = None  # the re-ranker's 0..1 relevance, for models that have one
    rank_score: float | None = None  # cosine − hubness offset, for models with a query bank


@dataclass
class CaptionHit:
    caption: Caption
    score: float
    rank_score: float | None = None


@dataclass
class ImageQuery:
    """Exactly one of the two: uploaded bytes or an indexed photo's id."""

    upload: bytes | None = None
    photo_id: int | None = None


class SearchService:
    def __init__(self, settings: Settings, encoder: Encoder, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.encoder = encoder
        self.sessions = sessions
        self.indexes = IndexCache(sessions, encoder.key)

    # --- query vectors -------------------------------------------------------------------
    def text_vector(self, query: str) -> np.ndarray:
        text = " ".join(query.split())
        if not text:
            raise InvalidInputError("query is empty: describe the photo in a few words")
        limit = self.settings.api.max_query_chars
        if len(text) > limit:
            raise InvalidInputError(f"query is {len(text):,} characters long; the limit is {limit:,}")
        vector: np.ndarray = self.encoder.encode_texts([text])[0]
        return vector

    def image_vector(self, query: ImageQuery) -> np.ndarray:
        if (query.upload is None) == (query.photo_id is None):
            raise InvalidInputError("give either an image upload or a photo_id, not both or neither")
        if query.photo_id is not None:
            return self._stored_vector(query.photo_id)
        assert query.upload is not None
        limit = self.settings.api.max_upload_bytes
        if len(query.upload) > limit:
            raise PayloadTooLargeError(f"upload is {len(query.upload):,} bytes; the limit is {limit:,}")
        try:
            decoded = decode_photo(query.upload, self.settings.indexer.max_image_pixels)
        except ImageDecodeError as exc:
            raise InvalidInputError(f"upload is not a usable image: {exc}") from exc
        vector: np.ndarray = self.encoder.encode_images([decoded.image])[0]
        return vector

    def _stored_vector(self, photo_id: int) -> np.ndarray:
        with self.sessions() as session:
            photo = repo.get_photo(session, photo_id=photo_id)
            if photo is None:
                raise NotFoundError(f"no photo with id {photo_id}")
            vector = repo.get_photo_vector(
                session, photo_id=photo_id, model_key=self.encoder.key, dim=self.encoder.dim
            )
        if vector is None:
            raise NotFoundError(
                f"photo {photo_id} has no vector for model {self.encoder.key} "
                f"(status: {photo.status}); run `photosearch index` on its folder"
            )
        return vector

    # --- searches --------------------------------------------------------------------------
    def collection_ids(self, names: list[str] | None) -> list[int] | None:
        if not names:
            return None
        with self.sessions() as session:
            found = dict(
                session.execute(select(Collection.name, Collection.id).where(Collection.name.in_(names)))
                .tuples()
                .all()
            )
        missing = sorted(set(names) - set(found))
        if missing:
            raise NotFoundError(f"unknown collection(s): {missing}")
        return list(found.values())

    def photos_near(
        self,
        vector: np.ndarray,
        *,
        k: int,
        offset: int = 0,
        min_score: float | None = None,
        collections: list[str] | None = None,
        exclude: int | None = None,
        tags: list[str] | None = None,
        normalise: bool = False,
    ) -> list[PhotoHit]:
        """The best photos for a query vector. normalise (text queries): rank by cosine minus each
        photo's hubness offset when the model has a query bank, re-ordering a wider set of candidates."""
        self._check_k(k, offset)
        wanted = k + offset + (1 if exclude is not None else 0)
        bank = self.encoder.query_bank if normalise else None
        fetch = wanted if bank is None else wanted + max(wanted, self.NORMALISE_EXTRA)
        if tags:
            raw = self._tagged_hits(vector, fetch, self.collection_ids(collections), tags)
        else:
            raw = self.indexes.search("photos", vector, fetch, self.collection_ids(collections))
        if not raw and not self.indexes.current("photos"):
            raise NotReadyError("nothing is indexed for this model yet: run `photosearch index PATH`")
        raw = [h for h in raw if h.id != exclude and (min_score is None or h.score >= min_score)]
        ranks: dict[int, float] = {}
        if bank is not None:
            raw, ranks = self._bank_order("photos", raw)
        raw = raw[offset : offset + k]
        with self.sessions() as session:
            photos = repo.get_photos(session, ids=[h.id for h in raw])
        return [PhotoHit(photos[h.id], h.score, rank_score=ranks.get(h.id)) for h in raw if h.id in photos]

    # Query-bank normalisation re-orders the cosine top (wanted + max(wanted, this)): on Flickr8k val the
    # top 100 by cosine always held the best photo by normalised score (offsets vary by ~0.03).
    NORMALISE_EXTRA = 100

    # --- tags filter (zero-shot tags, indexer/labels.py; clip family, issue 4) ------------------
    EXACT_TAGGED_MAX = 5_000  # at most this many tagged photos: exact scores over their vectors

    def _tagged_hits(
        self, vector: np.ndarray, wanted: int, collection_ids: list[int] | None, tags: list[str]
    ) -> list[RawHit]:
        """The best `wanted` photos carrying every tag: exact when few, else a widening index search."""
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

    # --- end tags filter ---------------------------------------------------------------------------

    def search_text(self, query: str, *, k: int, **filters: object) -> list[PhotoHit]:
        if self.encoder.reranker is not None:
            return self._reranked_text(query, k=k, **filters)
        return self.photos_near(self.text_vector(query), k=k, normalise=True, **filters)  # type: ignore[arg-type]

    def _reranked_text(self, query: str, *, k: int, **filters: object) -> list[PhotoHit]:
        """The dual encoder's best max(top_n, k + offset) photos, re-ordered by the re-ranker, which needs
        each candidate's patch grid: recomputed from its file (the index stores pooled vectors only).
        Each re-ranked hit keeps its cosine `score` and gets the re-ranker's `rerank_score` (sigmoid of
        its logit, 0..1) by which the hits are sorted; a photo that cannot be read any more has none and
        keeps its dual-encoder place after the re-ranked ones."""
        offset: int = filters.pop("offset", 0)  # type: ignore[assignment]
        self._check_k(k, offset)
        reranker = self.encoder.reranker
        assert reranker is not None
        wanted = max(reranker.top_n, k + offset)
        hits = self.photos_near(self.text_vector(query), k=wanted, normalise=True, **filters)  # type: ignore[arg-type]
        readable, images = [], []
        for hit in hits:
            try:
                limit = self.settings.indexer.max_image_pixels
                images.append(decode_photo(Path(hit.photo.path), limit).image)  # path is absolute
                readable.append(hit)
            except ImageDecodeError as exc:  # a file gone or changed since indexing: keep its dual rank
                log.warning("re-ranking without photo %s: %s", hit.photo.id, exc)
        logits = reranker.rerank(" ".join(query.split()), images)
        probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
        order = sorted(range(len(readable)), key=lambda i: -float(logits[i]))
        ranked = [PhotoHit(readable[i].photo, readable[i].score, float(probabilities[i])) for i in order]
        ranked += [h for h in hits if all(h is not r for r in readable)]
        return ranked[offset : offset + k]

    def search_captions(self, query: str, *, k: int) -> list[CaptionHit]:
        """Known captions nearest to a text query (caption→caption), with their photos' ids."""
        self._check_k(k, 0)
        return self.captions_near(self.text_vector(query), k=k)

    def search_image(self, query: ImageQuery, *, k: int, **filters: object) -> list[PhotoHit]:
        vector = self.image_vector(query)
        return self.photos_near(vector, k=k, exclude=query.photo_id, **filters)  # type: ignore[arg-type]

    def annotate(self, query: ImageQuery, *, k: int) -> list[CaptionHit]:
        self._check_k(k, 0)
        return self.captions_near(self.image_vector(query), k=k, normalise=True)

    def captions_near(self, vector: np.ndarray, *, k: int, normalise: bool = False) -> list[CaptionHit]:
        """The k known captions nearest to a query vector, best first. normalise (photo queries): rank
        by cosine minus each caption's hubness offset when the model has a query bank."""
        bank = self.encoder.query_bank if normalise else None
        fetch = k if bank is None else k + max(k, self.NORMALISE_EXTRA)
        raw: list[RawHit] = self.indexes.search("captions", vector, fetch)
        if not raw and not self.indexes.current("captions"):
            raise NotReadyError(
                "no captions are indexed: attach some with `photosearch index PATH --captions FILE`"
            )
        ranks: dict[int, float] = {}
        if bank is not None:
            raw, ranks = self._bank_order("captions", raw)
        raw = raw[:k]
        with self.sessions() as session:
            captions = repo.get_captions(session, ids=[h.id for h in raw])
        return [CaptionHit(captions[h.id], h.score, ranks.get(h.id)) for h in raw if h.id in captions]

    def _bank_order(self, kind: str, raw: list[RawHit]) -> tuple[list[RawHit], dict[int, float]]:
        """Candidates re-ordered by cosine − hubness offset (models/query_bank.py) → (hits, id → that score).
        The indexer stores each vector's offset beside it; one missing is computed from the vector. A hit
        whose vector has gone since the index was built is dropped, as the next build drops it."""
        bank = self.encoder.query_bank
        if bank is None or not raw:
            return raw, {}
        key, dim = self.encoder.key, self.encoder.dim
        with self.sessions() as session:
            stored = repo.hub_offsets_for_ids(session, kind=kind, ids=[h.id for h in raw], model_key=key)
            missing = [i for i, offset in stored.items() if offset is None]
            if missing and kind == "photos":
                found, _, vectors = repo.photo_vectors_for_ids(session, ids=missing, model_key=key, dim=dim)
                stored.update(zip(found.tolist(), bank.photo_offsets(vectors).tolist(), strict=True))
            elif missing:
                found, vectors = repo.caption_vectors_for_ids(session, ids=missing, model_key=key, dim=dim)
                stored.update(zip(found.tolist(), bank.caption_offsets(vectors).tolist(), strict=True))
        ranks = {h.id: h.score - offset for h in raw if (offset := stored.get(h.id)) is not None}
        return sorted((h for h in raw if h.id in ranks), key=lambda h: -ranks[h.id]), ranks

    def _check_k(self, k: int, offset: int) -> None:
        if not 1 <= k <= self.settings.api.max_k:
            raise InvalidInputError(f"k must be between 1 and {self.settings.api.max_k}; got {k}")
        if offset < 0:
            raise InvalidInputError(f"offset must be 0 or more; got {offset}")

    def readiness(self) -> dict[str, object]:
        with self.sessions() as session:
            photos = repo.count_photos(session, status="ok")
        return {
            "model": self.encoder.key,
            "photos": photos,
            "indexed_vectors": self.indexes.total("photos"),
            "caption_vectors": self.indexes.total("captions"),
        }
