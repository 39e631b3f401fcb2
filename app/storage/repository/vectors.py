"""Vectors as stored in SQL (float32 blobs) and the id ↔ vector reads the index builds and searches need."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.storage.tables import (
    Caption,
    CaptionEmbedding,
    Photo,
    PhotoEmbedding,
)


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def from_blobs(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    """→ (len(blobs), dim) float32."""
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim).copy()


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


def get_photo_vector(session: Session, *, photo_id: int, model_key: str, dim: int) -> np.ndarray | None:
    blob = session.scalar(
        select(PhotoEmbedding.vector).where(
            PhotoEmbedding.photo_id == photo_id, PhotoEmbedding.model_key == model_key
        )
    )
    return None if blob is None else from_blobs([blob], dim)[0]


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


def served_vectors_for_ids(
    session: Session, *, kind: str, collection_id: int, ids: Sequence[int], model_key: str, dim: int
) -> tuple[np.ndarray, np.ndarray]:
    """→ (ids (n,), vectors (n, dim)) ascending, of those of `ids` the collection's index serves now:
    the rows photo_vectors / caption_vectors read, for a few ids only (an incremental build)."""
    found: list[tuple[int, bytes]] = []
    for start in range(0, len(ids), _IDS_PER_QUERY):
        chunk = list(ids[start : start + _IDS_PER_QUERY])
        found.extend(session.execute(_served_rows(kind, collection_id, chunk, model_key)).tuples())
    found.sort(key=lambda row: row[0])
    return np.array([r[0] for r in found], dtype=np.int64), from_blobs([r[1] for r in found], dim)


_IDS_PER_QUERY = 10_000  # under SQLite's limit on bound parameters


def _served_rows(kind: str, collection_id: int, ids: list[int], model_key: str) -> Select[int, bytes]:
    if kind == "photos":
        return (
            select(PhotoEmbedding.photo_id, PhotoEmbedding.vector)
            .join(Photo, Photo.id == PhotoEmbedding.photo_id)
            .where(
                PhotoEmbedding.photo_id.in_(ids),
                PhotoEmbedding.model_key == model_key,
                Photo.collection_id == collection_id,
                Photo.status == "ok",
            )
        )
    return (
        select(CaptionEmbedding.caption_id, CaptionEmbedding.vector)
        .join(Caption, Caption.id == CaptionEmbedding.caption_id)
        .join(Photo, Photo.id == Caption.photo_id)
        .where(
            CaptionEmbedding.caption_id.in_(ids),
            CaptionEmbedding.model_key == model_key,
            Photo.collection_id == collection_id,
        )
    )


def vector_counts_by_model(session: Session, *, key_prefix: str) -> dict[str, int]:
    """Photo vectors per model key, among the keys that start with `key_prefix` (one model's weights
    embedded in its several ways)."""
    rows = session.execute(
        select(PhotoEmbedding.model_key, func.count())
        .where(PhotoEmbedding.model_key.startswith(key_prefix, autoescape=True))
        .group_by(PhotoEmbedding.model_key)
    ).all()
    return {str(key): int(count) for key, count in rows}
