"""Zero-shot tags: written by the indexer's labelling step, read by the tags filter."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.storage.tables import (
    Photo,
    PhotoEmbedding,
    PhotoTag,
)

ZERO_SHOT_SOURCE_PREFIX = "zeroshot:"


def photos_needing_tags(session: Session, *, collection_id: int, model_key: str, source: str) -> list[int]:
    """Embedded photos with no tag from `source` for their current content (new, changed or untagged)."""
    tagged = select(PhotoTag.id).where(
        PhotoTag.photo_id == Photo.id, PhotoTag.source == source, PhotoTag.photo_sha256 == Photo.sha256
    )
    query = (
        select(Photo.id)
        .join(PhotoEmbedding, PhotoEmbedding.photo_id == Photo.id)
        .where(
            Photo.collection_id == collection_id,
            Photo.status == "ok",
            PhotoEmbedding.model_key == model_key,
            ~tagged.exists(),
        )
        .order_by(Photo.id)
    )
    return list(session.scalars(query))


def replace_zero_shot_tags(session: Session, *, photo_ids: Sequence[int], tags: Iterable[PhotoTag]) -> None:
    """A photo's zero-shot tags from any earlier label set or model give way to the new ones."""
    session.execute(
        delete(PhotoTag).where(
            PhotoTag.photo_id.in_(list(photo_ids)), PhotoTag.source.startswith(ZERO_SHOT_SOURCE_PREFIX)
        )
    )
    session.add_all(list(tags))


def photo_ids_with_tags(
    session: Session, *, tags: Sequence[str], collection_ids: Sequence[int] | None = None
) -> dict[int, int]:
    """Photos carrying every one of `tags` (case-insensitive) → their collection id."""
    wanted = sorted({" ".join(t.split()).lower() for t in tags if t.strip()})
    if not wanted:
        return {}
    query = (
        select(Photo.id, Photo.collection_id)
        .join(PhotoTag, PhotoTag.photo_id == Photo.id)
        .where(PhotoTag.tag.in_(wanted), Photo.status == "ok")
        .group_by(Photo.id, Photo.collection_id)
        .having(func.count(func.distinct(PhotoTag.tag)) == len(wanted))
    )
    if collection_ids is not None:
        query = query.where(Photo.collection_id.in_(list(collection_ids)))
    return {int(pid): int(cid) for pid, cid in session.execute(query).tuples()}


def tags_of_photos(session: Session, *, photo_ids: Sequence[int]) -> dict[int, list[tuple[str, float]]]:
    """Each photo's tags, best first."""
    found: dict[int, list[tuple[str, float]]] = {}
    if not photo_ids:
        return found
    rows = session.execute(
        select(PhotoTag.photo_id, PhotoTag.tag, PhotoTag.score)
        .where(PhotoTag.photo_id.in_(list(photo_ids)))
        .order_by(PhotoTag.photo_id, PhotoTag.score.desc())
    ).tuples()
    for photo_id, tag, score in rows:
        found.setdefault(int(photo_id), []).append((tag, float(score)))
    return found


def tag_counts(session: Session, *, collection_id: int | None = None) -> list[tuple[str, int]]:
    """How many photos carry each tag, most common first."""
    photos = func.count(func.distinct(PhotoTag.photo_id))
    query = select(PhotoTag.tag, photos).group_by(PhotoTag.tag).order_by(photos.desc(), PhotoTag.tag)
    if collection_id is not None:
        query = query.join(Photo, Photo.id == PhotoTag.photo_id).where(Photo.collection_id == collection_id)
    return [(str(tag), int(count)) for tag, count in session.execute(query).tuples()]
