"""Ordering candidates beyond the cosine: query-bank normalisation and a model's re-ranker."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.services.index_cache import RawHit
from app.services.limits import HeavyWorkGate
from app.storage import repository as repo
from app.storage.tables import Photo
from models.encoder import Encoder, Reranker
from models.images import ImageDecodeError, decode_photo

log = logging.getLogger(__name__)

# Query-bank normalisation re-orders the cosine top (wanted + max(wanted, this)): on Flickr8k val the
# top 100 by cosine always held the best photo by normalised score (offsets vary by ~0.03).
NORMALISE_EXTRA = 100


@dataclass
class PhotoHit:
    photo: Photo
    score: float
    rerank_score: float | None = None  # the re-ranker's 0..1 relevance, for models that have one
    rank_score: float | None = None  # cosine − hubness offset, for models with a query bank
    duplicate_ids: list[int] = field(default_factory=list)  # near-identical photos this hit stands for

    @property
    def order(self) -> float:
        """The score the search ranked this hit by (before any re-ranking)."""
        return self.score if self.rank_score is None else self.rank_score


@dataclass(frozen=True)
class PhotoDecoding:
    """How indexed photos are decoded for the model: a pixel limit, and the shortest side it needs
    (a JPEG is decoded at reduced scale down to that)."""

    max_pixels: int
    min_side: int


def candidates_for(wanted: int, encoder: Encoder, normalise: bool) -> int:
    """How many cosine candidates to fetch so that bank ordering (when it applies) sees enough."""
    return wanted + max(wanted, NORMALISE_EXTRA) if normalise and encoder.query_bank else wanted


class BankRanking:
    """Candidates re-ordered by cosine − hubness offset (models/query_bank.py)."""

    def __init__(self, sessions: sessionmaker[Session], encoder: Encoder) -> None:
        self.sessions = sessions
        self.encoder = encoder

    def order(self, kind: str, raw: list[RawHit]) -> tuple[list[RawHit], dict[int, float]]:
        """→ (hits re-ordered, id → cosine − offset). The indexer stores each vector's offset beside it;
        one missing is computed from the vector. A hit whose vector has gone since the index was built
        is dropped, as the next build drops it. Without a bank: the hits as they are."""
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


def rerank(
    reranker: Reranker, text: str, hits: list[PhotoHit], gate: HeavyWorkGate, decode: PhotoDecoding
) -> list[PhotoHit]:
    """Hits re-ordered by the re-ranker, which needs each candidate's patch grid: recomputed from its
    file (the index stores pooled vectors only), and the score each hit was ranked by (a residual
    re-ranker adds its correction to it). Each re-ranked hit keeps its cosine `score` and gets
    the re-ranker's `rerank_score` (sigmoid of its logit, 0..1) by which the hits are sorted; a photo
    that cannot be read any more has none and keeps its dual-encoder place after the re-ranked ones.
    A hit standing for duplicates keeps them: the re-ranker orders groups by their leading photo."""
    readable, images = [], []
    with gate.slot(release_memory=True):
        for hit in hits:
            try:
                path = Path(hit.photo.path)  # absolute
                images.append(decode_photo(path, decode.max_pixels, decode.min_side).image)
                readable.append(hit)
            except ImageDecodeError as exc:  # a file gone or changed since indexing: keep its dual rank
                log.warning("re-ranking without photo %s: %s", hit.photo.id, exc)
        logits = reranker.rerank(text, images, [h.order for h in readable])
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, dtype=np.float64)))
    order = sorted(range(len(readable)), key=lambda i: -float(logits[i]))
    ranked = [replace(readable[i], rerank_score=float(probabilities[i]), rank_score=None) for i in order]
    return ranked + [h for h in hits if all(h is not r for r in readable)]
