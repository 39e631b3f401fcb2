"""The log of changed vectors (vector_changes, written by triggers) as incremental builds read it.

A build covers every change up to its watermark. The next build reads only the ids changed after
it, which is what makes a run's cost grow with what changed rather than with the collection.
"""

from __future__ import annotations

import zlib

from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.orm import Session

from app.storage.tables import IndexBuild, VectorChange


def lock_index(session: Session, *, collection_id: int, model_key: str, kind: str) -> None:
    """Serialise builds of one index on PostgreSQL until this transaction ends (two runs on one
    collection would otherwise both build on the same parent). SQLite serialises writers itself."""
    if session.get_bind().dialect.name != "postgresql":
        return
    key = zlib.crc32(f"index:{collection_id}:{model_key}:{kind}".encode())
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def change_watermark(session: Session) -> int:
    """The newest change id such that every change at or below it is committed and visible.

    PostgreSQL hands out sequence numbers before commit, so a lower number may still be in flight: a
    short side transaction takes a lock that waits for writers in flight, then reads the maximum.
    SQLite has one writer at a time, so the session's own snapshot is enough (and its write lock is
    not taken here, so indexing in another process goes on while a build is written)."""
    newest = select(func.max(VectorChange.id))
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return int(session.scalar(newest) or 0)
    engine = bind.engine if isinstance(bind, Connection) else bind
    with engine.connect() as side, side.begin():
        side.execute(text("LOCK TABLE vector_changes IN SHARE ROW EXCLUSIVE MODE"))
        return int(side.scalar(newest) or 0)


def prune_changes(session: Session, *, model_key: str, kind: str) -> int:
    """Delete the changes every latest build of this model and kind covers; returns how many.
    On PostgreSQL in a side transaction, so that the session holds no lock a later
    change_watermark would wait for."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        return _prune(session.connection(), model_key, kind)
    engine = bind.engine if isinstance(bind, Connection) else bind
    with engine.connect() as side, side.begin():
        return _prune(side, model_key, kind)


def _prune(connection: Connection, model_key: str, kind: str) -> int:
    latest = (
        select(func.max(IndexBuild.id))
        .where(IndexBuild.model_key == model_key, IndexBuild.kind == kind)
        .group_by(IndexBuild.collection_id)
    )
    covered = connection.scalar(
        select(func.min(func.coalesce(IndexBuild.watermark, 0))).where(IndexBuild.id.in_(latest))
    )
    if not covered:
        return 0
    done = connection.execute(
        delete(VectorChange).where(
            VectorChange.model_key == model_key, VectorChange.kind == kind, VectorChange.id <= covered
        )
    )
    return int(done.rowcount or 0)


def changed_ids(session: Session, *, model_key: str, kind: str, after: int, upto: int) -> list[int]:
    """Distinct photo or caption ids whose vector changed in (after, upto], ascending."""
    query = (
        select(VectorChange.item_id)
        .where(
            VectorChange.model_key == model_key,
            VectorChange.kind == kind,
            VectorChange.id > after,
            VectorChange.id <= upto,
        )
        .distinct()
        .order_by(VectorChange.item_id)
    )
    return [int(item) for item in session.scalars(query)]
