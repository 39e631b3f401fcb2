"""Migrations 0002 (photo_tags) and 0004 (collection_folders) upgrade, downgrade and keep data on
SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import inspect, select, text

from app.storage.db import make_engine, migrate, session_factory, transaction
from app.storage.tables import Collection, CollectionFolder, Photo, PhotoTag
from tests.builders.databases import run_migration, table_names


def test_photo_tags_upgrade_downgrade_upgrade(db_url: str) -> None:
    run_migration(db_url, "upgrade", "0001")
    assert "photo_tags" not in table_names(db_url)

    run_migration(db_url, "upgrade", "head")
    engine = make_engine(db_url)
    inspector = inspect(engine)
    columns = {c["name"] for c in inspector.get_columns("photo_tags")}
    indexes = {i["name"] for i in inspector.get_indexes("photo_tags")}
    engine.dispose()
    assert columns == {"id", "photo_id", "tag", "score", "source", "photo_sha256", "created_at"}
    assert "ix_photo_tags_tag" in indexes

    run_migration(db_url, "downgrade", "0001")
    assert "photo_tags" not in table_names(db_url)
    assert "photos" in table_names(db_url)  # 0001 untouched
    run_migration(db_url, "upgrade", "head")
    assert "photo_tags" in table_names(db_url)


def test_tags_go_with_their_photo(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        collection = Collection(name="c", root="/photos")
        session.add(collection)
        session.flush()
        photo = Photo(collection_id=collection.id, path="/photos/a.jpg", size=1, mtime_ns=1, sha256="a" * 64)
        session.add(photo)
        session.flush()
        session.add(
            PhotoTag(photo_id=photo.id, tag="dog", score=0.9, source="zeroshot:x@m", photo_sha256="a" * 64)
        )
    with transaction(sessions) as session:
        assert session.scalars(select(PhotoTag.tag)).all() == ["dog"]
        session.delete(session.get(Photo, photo.id))
    with sessions() as session:
        assert session.scalars(select(PhotoTag)).all() == []
    engine.dispose()


def test_migration_matches_the_table_definition(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from app.storage.tables import Base

    engine = make_engine(db_url)
    migrate(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [d for d in differences if "photo_tags" in repr(d) or "collection_folders" in repr(d)] == []


def test_collection_folders_start_from_each_collection_root(db_url: str) -> None:
    run_migration(db_url, "upgrade", "0003")
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO collections (name, root, created_at) "
                "VALUES ('a', '/photos/a', :t), ('b', '/b', :t)"
            ),
            {"t": datetime(2026, 1, 1, tzinfo=UTC)},
        )
    engine.dispose()

    run_migration(db_url, "upgrade", "head")
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        folders = session.execute(
            select(Collection.name, CollectionFolder.path)
            .join(CollectionFolder, CollectionFolder.collection_id == Collection.id)
            .order_by(Collection.name)
        ).all()
    engine.dispose()
    assert [tuple(row) for row in folders] == [("a", "/photos/a"), ("b", "/b")]

    run_migration(db_url, "downgrade", "0003")
    assert "collection_folders" not in table_names(db_url) and "collections" in table_names(db_url)
    run_migration(db_url, "upgrade", "head")
    assert "collection_folders" in table_names(db_url)
