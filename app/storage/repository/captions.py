"""Caption rows attached to photos."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.storage.tables import (
    Caption,
    CaptionEmbedding,
    Photo,
)


def captions_without_vectors(session: Session, *, collection_id: int, model_key: str) -> list[Caption]:
    embedded = select(CaptionEmbedding.caption_id).where(CaptionEmbedding.model_key == model_key)
    return list(
        session.scalars(
            select(Caption)
            .join(Photo, Photo.id == Caption.photo_id)
            .where(Photo.collection_id == collection_id, Caption.id.not_in(embedded))
            .order_by(Caption.id)
        )
    )


@dataclass(frozen=True)
class CaptionChange:
    kept: int
    added: int
    removed: int


def replace_captions(session: Session, *, photo: Photo, texts: Iterable[str], source: str) -> CaptionChange:
    """Captions from one source replace that source's earlier ones, by text: a caption already there
    keeps its row (id and vectors), a new text gets a row, a text no longer given is deleted."""
    earlier: dict[str, list[int]] = defaultdict(list)
    for caption_id, text in session.execute(
        select(Caption.id, Caption.text)
        .where(Caption.photo_id == photo.id, Caption.source == source)
        .order_by(Caption.id)
    ).tuples():
        earlier[text].append(caption_id)
    kept = added = 0
    for text in texts:
        if earlier.get(text):
            earlier[text].pop(0)
            kept += 1
        else:
            session.add(Caption(photo_id=photo.id, text=text, source=source))
            added += 1
    gone = [caption_id for ids in earlier.values() for caption_id in ids]
    if gone:
        session.execute(delete(Caption).where(Caption.id.in_(gone)))
    return CaptionChange(kept, added, len(gone))


def get_captions(session: Session, *, ids: Sequence[int]) -> dict[int, Caption]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(Caption).where(Caption.id.in_(list(ids))))}
