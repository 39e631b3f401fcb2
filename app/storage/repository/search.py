"""Lookups the search services need beyond plain rows: collection ids by name."""

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
