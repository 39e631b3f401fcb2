"""Photo rows."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from app.storage.tables import Photo


def photos_by_path(session: Session, *, collection_id: int, under: str | None = None) -> dict[str, Photo]:
    """The collection's photos by absolute path; with `under`, only those inside that folder."""
    query = select(Photo).where(Photo.collection_id == collection_id)
    if under is not None:
        prefix = under.rstrip(os.sep) + os.sep
        query = query.where(or_(Photo.path == under, Photo.path.startswith(prefix, autoescape=True)))
    return {row.path: row for row in session.scalars(query)}


def photos_with_hashes(session: Session, *, collection_id: int, hashes: Iterable[str]) -> list[Photo]:
    """The collection's photos whose content hash is one of `hashes` (rename candidates)."""
    wanted = sorted(set(hashes))
    found: list[Photo] = []
    for start in range(0, len(wanted), 500):  # bounded IN lists (SQLite's variable limit)
        query = select(Photo).where(
            Photo.collection_id == collection_id, Photo.sha256.in_(wanted[start : start + 500])
        )
        found.extend(session.scalars(query.order_by(Photo.id)))
    return found


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


def count_photos(session: Session, *, status: str | None = None) -> int:
    query = select(func.count(Photo.id))
    if status:
        query = query.where(Photo.status == status)
    return int(session.scalar(query) or 0)
