"""Migration 0005 (api_keys, api_key_collections) on SQLite and PostgreSQL, and the key rows' rules."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete

from app.services.keys import KeyService
from app.storage.db import make_engine, migrate, session_factory, transaction
from app.storage.repository import get_or_create_collection
from app.storage.tables import Base, Collection
from tests.builders.databases import run_migration, table_names

KEY_TABLES = {"api_keys", "api_key_collections"}


def test_api_keys_upgrade_downgrade_upgrade_and_match_the_tables(db_url: str) -> None:
    run_migration(db_url, "upgrade", "0004")
    assert not KEY_TABLES & table_names(db_url)
    run_migration(db_url, "upgrade", "head")
    assert table_names(db_url) >= KEY_TABLES
    run_migration(db_url, "downgrade", "0004")
    assert not KEY_TABLES & table_names(db_url) and "collection_folders" in table_names(db_url)
    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [d for d in differences if "api_key" in repr(d)] == []


def test_a_key_loses_a_deleted_collection_and_revocation_is_seen_at_once(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        family = get_or_create_collection(session, name="family", root=tmp_path / "family").id
        work = get_or_create_collection(session, name="work", root=tmp_path / "work").id
    keys = KeyService(sessions, cache_seconds=0.0)
    token = keys.create("both", collections=["family", "work"])
    scope = keys.scope_for(token)
    assert scope is not None and scope.collection_ids == {family, work} and scope.key_name == "both"
    assert not scope.admin and not scope.sees_server_files
    assert [row.last_used_at is not None for row in keys.list()] == [True]
    with transaction(sessions) as session:
        session.execute(delete(Collection).where(Collection.id == work))
    scope = keys.scope_for(token)
    assert scope is not None and scope.collection_ids == {family}
    other_replica = KeyService(sessions, cache_seconds=0.0)
    assert other_replica.scope_for(token) is not None
    keys.revoke("both")
    assert other_replica.scope_for(token) is None and keys.scope_for(token) is None
    assert keys.scope_for("") is None and keys.scope_for("x" * 10_000) is None
    cached = KeyService(sessions, cache_seconds=60.0)
    again = cached.create("again", collections=["family"])
    assert cached.cached_scope(again) is None  # never looked up yet: SQL decides
    looked_up = cached.scope_for(again)
    assert looked_up is not None and cached.cached_scope(again) == looked_up
    cached.revoke("again")
    assert cached.cached_scope(again) is not None  # within its window, as documented
    assert KeyService(sessions, cache_seconds=60.0).scope_for(again) is None
    engine.dispose()
