"""Figures for /metrics: photos per collection, and the served index builds with their age."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.storage.repository.index_builds import latest_index_builds
from app.storage.tables import Collection, Photo


def photos_per_collection(session: Session) -> dict[str, int]:
    """Every collection's name → its photos the indexer embedded (status ok); 0 for none."""
    query = (
        select(Collection.name, func.count(Photo.id))
        .outerjoin(Photo, (Photo.collection_id == Collection.id) & (Photo.status == "ok"))
        .group_by(Collection.name)
    )
    return {str(name): int(count) for name, count in session.execute(query).tuples()}


def served_builds(session: Session, *, model_key: str) -> list[tuple[str, str, int, datetime]]:
    """(collection name, kind, vectors, built at) of the newest build of each collection and kind."""
    names = {
        int(cid): str(name) for cid, name in session.execute(select(Collection.id, Collection.name)).tuples()
    }
    rows = []
    for kind in ("photos", "captions"):
        for build in latest_index_builds(session, model_key=model_key, kind=kind):
            rows.append(
                (
                    str(names.get(build.collection_id, build.collection_id)),
                    kind,
                    build.vectors,
                    build.created_at,
                )
            )
    return rows
