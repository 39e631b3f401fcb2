"""The collections a request may see, with what a person choosing one wants to know."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from app.services.access import AccessScope
from app.storage import repository as repo
from app.storage.repository.status import photos_per_collection


@dataclass(frozen=True)
class CollectionSummary:
    id: int
    name: str
    folders: list[str]  # absolute for admins, the folders' own names for other keys
    photos: int  # indexed (status ok)
    last_indexed_at: datetime | None  # the newest search index build of the served model


def as_utc(moment: datetime | None) -> datetime | None:
    """Build times are written in UTC; SQLite hands them back without their zone."""
    return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=UTC)


def shown_folder(path: str, scope: AccessScope) -> str:
    """Server paths are for admins (as photo paths are); other keys see a folder's name."""
    return path if scope.sees_server_files else os.path.basename(path.rstrip(os.sep)) or path


def visible_collections(
    sessions: sessionmaker[Session], *, model_key: str, scope: AccessScope
) -> list[CollectionSummary]:
    """Every collection the scope allows (admin and auth off: all), by name."""
    with sessions() as session:
        counts = photos_per_collection(session)
        builds = {
            b.collection_id: b.created_at
            for b in repo.latest_index_builds(session, model_key=model_key, kind="photos")
        }
        return [
            CollectionSummary(
                id=c.id,
                name=c.name,
                folders=[
                    shown_folder(f, scope) for f in repo.collection_folders(session, collection_id=c.id)
                ],
                photos=counts.get(c.name, 0),
                last_indexed_at=as_utc(builds.get(c.id)),
            )
            for c in repo.list_collections(session)
            if scope.allows(c.id)
        ]
