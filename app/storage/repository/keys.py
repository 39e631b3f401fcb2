"""API key rows: created and revoked by `photosearch keys`, looked up by token hash per request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.storage.tables import ApiKey, ApiKeyCollection, Collection, utcnow


@dataclass(frozen=True)
class KeyRow:
    """A key as the server and `keys list` need it; collection_ids None: every collection."""

    id: int
    name: str
    token_sha256: str
    admin: bool
    collection_ids: frozenset[int] | None
    collection_names: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None


def add_key(
    session: Session, *, name: str, token_sha256: str, admin: bool, collection_ids: Sequence[int] | None
) -> None:
    """collection_ids None: every collection (admin keys always)."""
    key = ApiKey(
        name=name, token_sha256=token_sha256, admin=admin, all_collections=admin or collection_ids is None
    )
    session.add(key)
    session.flush()
    for collection_id in sorted(set(collection_ids or ())):
        session.add(ApiKeyCollection(key_id=key.id, collection_id=collection_id))
    session.flush()


def key_named(session: Session, *, name: str) -> bool:
    return session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None


def _row(session: Session, key: ApiKey) -> KeyRow:
    scoped = session.execute(
        select(Collection.id, Collection.name)
        .join(ApiKeyCollection, ApiKeyCollection.collection_id == Collection.id)
        .where(ApiKeyCollection.key_id == key.id)
        .order_by(Collection.name)
    ).tuples()
    pairs = list(scoped)
    return KeyRow(
        id=key.id,
        name=key.name,
        token_sha256=key.token_sha256,
        admin=key.admin,
        collection_ids=None if key.all_collections else frozenset(cid for cid, _ in pairs),
        collection_names=tuple(name for _, name in pairs),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
    )


def key_by_hash(session: Session, *, token_sha256: str) -> KeyRow | None:
    key = session.scalar(select(ApiKey).where(ApiKey.token_sha256 == token_sha256))
    return None if key is None else _row(session, key)


def list_keys(session: Session) -> list[KeyRow]:
    return [_row(session, key) for key in session.scalars(select(ApiKey).order_by(ApiKey.name))]


def count_keys(session: Session) -> int:
    return int(session.scalar(select(func.count(ApiKey.id))) or 0)


def delete_key(session: Session, *, name: str) -> bool:
    """True when a key of this name existed."""
    if not key_named(session, name=name):
        return False
    session.execute(delete(ApiKey).where(ApiKey.name == name))
    return True


def touch_key(session: Session, *, key_id: int) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
