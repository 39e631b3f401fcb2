"""Lookups the search and photo services need beyond plain rows: collection ids by name, and the
root folders a photo file must lie in to be served."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.storage.tables import Collection


def collection_ids_by_name(session: Session, *, names: Sequence[str]) -> dict[str, int]:
    """The collections of these names that exist → their ids."""
    if not names:
        return {}
    query = select(Collection.name, Collection.id).where(Collection.name.in_(list(names)))
    return {str(name): int(cid) for name, cid in session.execute(query).tuples()}


def collection_roots(session: Session, *, collection_id: int) -> list[str]:
    """Every folder indexed into a collection (absolute paths as the indexer stored them)."""
    root = session.scalar(select(Collection.root).where(Collection.id == collection_id))
    return [] if root is None else [root]
