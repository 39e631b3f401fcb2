"""The photos a search's metadata filters allow: tags, date taken, folder and camera, in one query."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session

from app.storage.tables import Photo, PhotoTag


@dataclass(frozen=True)
class MetadataFilter:
    """Each field narrows the photos; an empty one does not. Bounds are inclusive."""

    collection_ids: Sequence[int] | None = None
    tags: Sequence[str] = ()
    taken_after: datetime | None = None
    taken_before: datetime | None = None
    folders: Sequence[str] = ()  # relative to the collection's folder; each matches itself and below
    cameras: Sequence[str] = ()  # "make model", make alone or model alone, case-insensitive


def folder_condition(folders: Sequence[str]) -> ColumnElement[bool] | None:
    """A folder and everything below it; "" (the collection's top folder) is every photo."""
    wanted = sorted({"/".join(p for p in f.replace("\\", "/").split("/") if p) for f in folders})
    if "" in wanted:
        return None
    return or_(*(or_(Photo.folder == f, Photo.folder.startswith(f + "/", autoescape=True)) for f in wanted))


def camera_condition(cameras: Sequence[str]) -> ColumnElement[bool]:
    wanted = sorted({" ".join(c.split()).lower() for c in cameras})
    make, model = func.lower(Photo.camera_make), func.lower(Photo.camera_model)
    return or_(make.in_(wanted), model.in_(wanted), (make + " " + model).in_(wanted))


def tag_condition(tags: Sequence[str]) -> ColumnElement[bool]:
    """Photos carrying every one of `tags` (case-insensitive)."""
    wanted = sorted({" ".join(t.split()).lower() for t in tags})
    carrying = (
        select(PhotoTag.photo_id)
        .where(PhotoTag.tag.in_(wanted))
        .group_by(PhotoTag.photo_id)
        .having(func.count(func.distinct(PhotoTag.tag)) == len(wanted))
    )
    return Photo.id.in_(carrying)


def matching_query(wanted: MetadataFilter) -> Select[int, int]:
    query = select(Photo.id, Photo.collection_id).where(Photo.status == "ok")
    if wanted.collection_ids is not None:
        query = query.where(Photo.collection_id.in_(list(wanted.collection_ids)))
    if wanted.taken_after is not None:
        query = query.where(Photo.taken_at >= wanted.taken_after)
    if wanted.taken_before is not None:
        query = query.where(Photo.taken_at <= wanted.taken_before)
    folders = folder_condition(wanted.folders) if wanted.folders else None
    if folders is not None:
        query = query.where(folders)
    if wanted.cameras:
        query = query.where(camera_condition(wanted.cameras))
    if wanted.tags:
        query = query.where(tag_condition(wanted.tags))
    return query


def photo_ids_matching(session: Session, *, wanted: MetadataFilter) -> dict[int, int]:
    """The photos passing every filter → their collection id."""
    return {int(row[0]): int(row[1]) for row in session.execute(matching_query(wanted))}


def taken_at_of(session: Session, *, ids: Sequence[int]) -> dict[int, datetime | None]:
    """When each photo was taken (None: unknown), for date order."""
    if not ids:
        return {}
    rows = session.execute(select(Photo.id, Photo.taken_at).where(Photo.id.in_(list(ids))))
    return {int(pid): taken for pid, taken in rows}
