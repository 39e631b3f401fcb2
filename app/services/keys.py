"""API keys: created with a random token shown once, stored as its sha256, checked per request.

The lookup goes to SQL (so that a key revoked on one replica is refused by all of them on their next
request); a key found is trusted for auth.cache_seconds, so that a burst of requests costs one query.
Tokens are 256 random bits, so a plain sha256 is enough to make a stolen database useless."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from app.services.access import AccessScope
from app.storage.db import transaction
from app.storage.repository import keys as key_rows
from app.storage.repository.keys import KeyRow
from app.storage.repository.search import collection_ids_by_name
from models.errors import InvalidInputError, NotFoundError

TOKEN_PREFIX = "psk_"
MAX_TOKEN_CHARS = 200  # far above a real token: longer headers are refused without hashing them
TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key and replica


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class KeyService:
    def __init__(self, sessions: sessionmaker[Session], cache_seconds: float = 1.0) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, KeyRow]] = {}
        self._touched: dict[int, datetime] = {}
        self._lock = threading.Lock()

    def create(self, name: str, *, collections: list[str] | None = None, admin: bool = False) -> str:
        """A new key's token (shown once). collections None: every collection, present and future."""
        name = name.strip()
        if not name or len(name) > 200 or not name.isprintable():
            raise InvalidInputError("a key name is 1 to 200 printable characters")
        if collections is not None and not collections:
            raise InvalidInputError("name at least one collection (--collections a,b), or give --all")
        token = new_token()
        with transaction(self.sessions) as session:
            if key_rows.key_named(session, name=name):
                raise InvalidInputError(f"a key named {name!r} exists; revoke it first or pick another name")
            ids = None if collections is None else self._collection_ids(session, collections)
            key_rows.add_key(
                session, name=name, token_sha256=token_hash(token), admin=admin, collection_ids=ids
            )
        return token

    @staticmethod
    def _collection_ids(session: Session, names: list[str]) -> list[int]:
        found = collection_ids_by_name(session, names=names)
        missing = sorted(set(names) - set(found))
        if missing:
            known = ", ".join(sorted(found)) or "none yet"
            raise NotFoundError(
                f"no collection named {', '.join(missing)}; index it first (`photosearch index PATH "
                f"--collection NAME`) (known here: {known})"
            )
        return sorted(found.values())

    def list(self) -> list[KeyRow]:
        with self.sessions() as session:
            return key_rows.list_keys(session)

    def revoke(self, name: str) -> None:
        with transaction(self.sessions) as session:
            if not key_rows.delete_key(session, name=name):
                raise NotFoundError(f"no key named {name!r} (`photosearch keys list` shows them)")

    def count(self) -> int:
        with self.sessions() as session:
            return key_rows.count_keys(session)

    def cached_scope(self, token: str) -> AccessScope | None:
        """The scope of a token looked up within cache_seconds, without touching SQL (so the event
        loop may call it); None when it must be looked up (scope_for)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = token_hash(token)
        row = self._cached(digest)
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            return None
        return AccessScope(key_name=row.name, collection_ids=row.collection_ids, admin=row.admin)

    def scope_for(self, token: str) -> AccessScope | None:
        """The scope of a valid token, None for any other."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest = token_hash(token)
        row = self._cached(digest)
        if row is None:
            with self.sessions() as session:
                row = key_rows.key_by_hash(session, token_sha256=digest)
            if row is None:
                return None
            with self._lock:
                self._cache[digest] = (time.monotonic(), row)
        if not hmac.compare_digest(row.token_sha256, digest):
            return None
        self._touch(row)
        return AccessScope(key_name=row.name, collection_ids=row.collection_ids, admin=row.admin)

    def _cached(self, digest: str) -> KeyRow | None:
        now = time.monotonic()
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache = {d: hit for d, hit in self._cache.items() if now - hit[0] < self.cache_seconds}
            hit = self._cache.get(digest)
        if hit is None or now - hit[0] >= self.cache_seconds:
            return None
        return hit[1]

    def _touch(self, row: KeyRow) -> None:
        now = datetime.now(UTC)
        with self._lock:
            last = self._touched.get(row.id)
            if last is not None and now - last < TOUCH_EVERY:
                return
            self._touched[row.id] = now
        with transaction(self.sessions) as session:
            key_rows.touch_key(session, key_id=row.id)
