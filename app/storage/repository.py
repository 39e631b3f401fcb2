"""Keyword-only data access functions shared by the indexer and the service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, selectinload

from app.storage.tables import (
    Caption,
    CaptionEmbedding,
    Collection,
    IndexBuild,
    Photo,
    PhotoEmbedding,
    PhotoTag,
)


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """→ (len(blobs), dim) float32."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim).copy()


def get_collection(session: Session, *, name: str) -> Collection | None:
    return session.scalar(select(Collection).where(Collection.name == name))


def get_or_create_collection(session: Session, *, name: str, root: Path) -> Collection:
    collection = get_collection(session, name=name)
    if collection is None:
        collection = Collection(name=name, root=str(root))
        session.add(collection)
        session.flush()
    elif collection.root != str(root):
        collection.root = str(root)
    return collection


def list_collections(session: Session) -> list[Collection]:
    return list(session.scalars(select(Collection).order_by(Collection.name)))


def photos_by_path(session: Session, *, collection_id: int) -> dict[str, Photo]:
    rows = session.scalars(select(Photo).where(Photo.collection_id == collection_id))
    return {row.path: row for row in rows}


def embedded_photo_ids(session: Session, *, collection_id: int, model_key: str) -> set[int]:
    query = (
        select(PhotoEmbedding.photo_id)
        .join(Photo, Photo.id == PhotoEmbedding.photo_id)
        .where(Photo.collection_id == collection_id, PhotoEmbedding.model_key == model_key)
    )
    return set(session.scalars(query))


def photo_vectors(
    session: Session, *, collection_id: int, model_key: str, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """→ (ids (n,), vectors (n, dim)) of every photo embedded with this model."""
    rows = session.execute(
        select(PhotoEmbedding.photo_id, PhotoEmbedding.vector)
        .join(Photo, Photo.id == PhotoEmbedding.photo_id)
        .where(
            Photo.collection_id == collection_id, PhotoEmbedding.model_key == model_key, Photo.status == "ok"
        )
        .order_by(PhotoEmbedding.photo_id)
    ).all()
    return np.array([r[0] for r in rows], dtype=np.int64), from_blobs([r[1] for r in rows], dim)


def caption_vectors(
    session: Session, *, collection_id: int, model_key: str, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    rows = session.execute(
        select(CaptionEmbedding.caption_id, CaptionEmbedding.vector)
        .join(Caption, Caption.id == CaptionEmbedding.caption_id)
        .join(Photo, Photo.id == Caption.photo_id)
        .where(Photo.collection_id == collection_id, CaptionEmbedding.model_key == model_key)
        .order_by(CaptionEmbedding.caption_id)
    ).all()
    return np.array([r[0] for r in rows], dtype=np.int64), from_blobs([r[1] for r in rows], dim)


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


def record_index_build(
    session: Session,
    *,
    collection_id: int,
    model_key: str,
    kind: str,
    index_type: str,
    path: Path,
    vectors: int,
    dim: int,
    signature: str,
) -> IndexBuild:
    build = IndexBuild(
        collection_id=collection_id,
        model_key=model_key,
        kind=kind,
        index_type=index_type,
        path=str(path),
        vectors=vectors,
        dim=dim,
        signature=signature,
    )
    session.add(build)
    session.flush()
    return build


def latest_index_builds(
    session: Session, *, model_key: str, kind: str, collection_ids: Sequence[int] | None = None
) -> list[IndexBuild]:
    """The newest build of each collection for this model and kind."""
    newest = (
        select(func.max(IndexBuild.id))
        .where(IndexBuild.model_key == model_key, IndexBuild.kind == kind)
        .group_by(IndexBuild.collection_id)
    )
    query = select(IndexBuild).where(IndexBuild.id.in_(newest))
    if collection_ids is not None:
        query = query.where(IndexBuild.collection_id.in_(collection_ids))
    return list(session.scalars(query.order_by(IndexBuild.collection_id)))


def prune_index_builds(
    session: Session, *, collection_id: int, model_key: str, kind: str, keep: int = 2
) -> list[str]:
    """Drop old build rows beyond the newest `keep`; returns their file paths for removal."""
    rows = list(
        session.scalars(
            select(IndexBuild)
            .where(
                IndexBuild.collection_id == collection_id,
                IndexBuild.model_key == model_key,
                IndexBuild.kind == kind,
            )
            .order_by(IndexBuild.id.desc())
        )
    )
    stale = rows[keep:]
    for row in stale:
        session.delete(row)
    return [row.path for row in stale]


def get_photo(session: Session, *, photo_id: int) -> Photo | None:
    return session.scalar(
        select(Photo)
        .options(selectinload(Photo.captions), selectinload(Photo.tags))
        .where(Photo.id == photo_id)
    )


def get_photos(session: Session, *, ids: Sequence[int]) -> dict[int, Photo]:
    if not ids:
        return {}
    rows = session.scalars(
        select(Photo)
        .options(selectinload(Photo.captions), selectinload(Photo.tags))
        .where(Photo.id.in_(list(ids)))
    )
    return {row.id: row for row in rows}


def get_captions(session: Session, *, ids: Sequence[int]) -> dict[int, Caption]:
    if not ids:
        return {}
    return {row.id: row for row in session.scalars(select(Caption).where(Caption.id.in_(list(ids))))}


def get_photo_vector(session: Session, *, photo_id: int, model_key: str, dim: int) -> np.ndarray | None:
    blob = session.scalar(
        select(PhotoEmbedding.vector).where(
            PhotoEmbedding.photo_id == photo_id, PhotoEmbedding.model_key == model_key
        )
    )
    return None if blob is None else from_blobs([blob], dim)[0]


def count_photos(session: Session, *, status: str | None = None) -> int:
    query = select(func.count(Photo.id))
    if status:
        query = query.where(Photo.status == status)
    return int(session.scalar(query) or 0)


# --- zero-shot tags (clip family, issue 4): written by indexer/labels.py, read by the tags filter ---
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


def photo_vectors_for_ids(
    session: Session, *, ids: Sequence[int], model_key: str, dim: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """→ (ids (n,), sha256 of each, vectors (n, dim)) for those of `ids` embedded with this model."""
    if not ids:
        return np.zeros(0, dtype=np.int64), [], np.zeros((0, dim), dtype=np.float32)
    rows = session.execute(
        select(Photo.id, Photo.sha256, PhotoEmbedding.vector)
        .join(PhotoEmbedding, PhotoEmbedding.photo_id == Photo.id)
        .where(Photo.id.in_(list(ids)), PhotoEmbedding.model_key == model_key)
        .order_by(Photo.id)
    ).all()
    ids_out = np.array([r[0] for r in rows], dtype=np.int64)
    return ids_out, [r[1] for r in rows], from_blobs([r[2] for r in rows], dim)


def hub_offsets_for_ids(
    session: Session, *, kind: str, ids: Sequence[int], model_key: str
) -> dict[int, float | None]:
    """id → stored query-bank offset (None where the row has none) for photos or captions with vectors."""
    table: type[PhotoEmbedding] | type[CaptionEmbedding] = (
        PhotoEmbedding if kind == "photos" else CaptionEmbedding
    )
    column = PhotoEmbedding.photo_id if kind == "photos" else CaptionEmbedding.caption_id
    if not ids:
        return {}
    rows = session.execute(
        select(column, table.hub_offset).where(column.in_(list(ids)), table.model_key == model_key)
    ).all()
    return {int(r[0]): r[1] for r in rows}


def caption_vectors_for_ids(
    session: Session, *, ids: Sequence[int], model_key: str, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """→ (ids (n,), vectors (n, dim)) for those of `ids` embedded with this model."""
    if not ids:
        return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
    rows = session.execute(
        select(CaptionEmbedding.caption_id, CaptionEmbedding.vector)
        .where(CaptionEmbedding.caption_id.in_(list(ids)), CaptionEmbedding.model_key == model_key)
        .order_by(CaptionEmbedding.caption_id)
    ).all()
    return np.array([r[0] for r in rows], dtype=np.int64), from_blobs([r[1] for r in rows], dim)


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
