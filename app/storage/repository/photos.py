"""Collections and photo rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.storage.tables import (
    Collection,
    Photo,
)


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
