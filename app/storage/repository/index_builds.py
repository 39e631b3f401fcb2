"""The FAISS files written for each (collection, model, kind), newest served."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.storage.tables import (
    IndexBuild,
)


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
