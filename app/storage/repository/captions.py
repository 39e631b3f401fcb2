"""Caption rows attached to photos."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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


def replace_captions(session: Session, *, photo: Photo, texts: Iterable[str], source: str) -> int:
    """Captions from one source replace that source's earlier ones; returns how many were added."""
    session.execute(delete(Caption).where(Caption.photo_id == photo.id, Caption.source == source))
    added = 0
    for text in texts:
        session.add(Caption(photo_id=photo.id, text=text, source=source))
        added += 1
    return added


def get_captions(session: Session, *, ids: Sequence[int]) -> dict[int, Caption]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(Caption).where(Caption.id.in_(list(ids))))}
