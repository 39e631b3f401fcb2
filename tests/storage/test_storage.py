"""The schema and data access, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import numpy as np
from alembic import command
from sqlalchemy import inspect, select

from app.storage import repository as repo
from app.storage.db import alembic_config, make_engine, migrate, session_factory, transaction
from app.storage.tables import Caption, Photo, PhotoEmbedding


def _photo(collection_id: int, path: str, sha: str = "a" * 64) -> Photo:
    return Photo(
        collection_id=collection_id, path=path, folder="", size=1, mtime_ns=1, sha256=sha, status="ok"
    )


def test_migrations_create_every_table_and_are_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # a second run changes nothing
    tables = set(inspect(engine).get_table_names())
    assert {
        "collections",
        "photos",
        "photo_embeddings",
        "captions",
        "caption_embeddings",
        "index_builds",
        "alembic_version",
    } <= tables
    engine.dispose()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    config = alembic_config(db_url)
    command.downgrade(config, "base")
    assert "photos" not in inspect(engine).get_table_names()
    command.upgrade(config, "head")
    assert "photos" in inspect(engine).get_table_names()
    engine.dispose()


def test_vectors_round_trip_and_deleting_a_photo_removes_its_rows(db_url: str, tmp_path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    vectors = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    with transaction(sessions) as session:
        collection = repo.get_or_create_collection(session, name="c", root=tmp_path)
        first, second = _photo(collection.id, "/p/1.jpg"), _photo(collection.id, "/p/2.jpg")
        session.add_all([first, second])
        session.flush()
        for photo, vector in zip((first, second), vectors, strict=True):
            session.add(PhotoEmbedding(photo_id=photo.id, model_key="m@1", vector=repo.to_blob(vector)))
        repo.replace_captions(session, photo=first, texts=["a dog", "a brown dog"], source="s")
    with sessions() as session:
        ids, loaded = repo.photo_vectors(session, collection_id=collection.id, model_key="m@1", dim=8)
        assert ids.tolist() == [first.id, second.id]
        assert np.array_equal(loaded, vectors)
        assert repo.photo_vectors(session, collection_id=collection.id, model_key="other", dim=8)[0].size == 0
    with transaction(sessions) as session:
        session.delete(session.get(Photo, first.id))
    with sessions() as session:
        assert session.scalars(select(PhotoEmbedding.photo_id)).all() == [second.id]
        assert session.scalars(select(Caption)).all() == []
    engine.dispose()


def test_captions_from_one_source_replace_only_that_source(db_url: str, tmp_path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        collection = repo.get_or_create_collection(session, name="c", root=tmp_path)
        photo = _photo(collection.id, "/p/1.jpg")
        session.add(photo)
        session.flush()
        repo.replace_captions(session, photo=photo, texts=["old"], source="a")
        repo.replace_captions(session, photo=photo, texts=["kept"], source="b")
        repo.replace_captions(session, photo=photo, texts=["new one", "new two"], source="a")
    with sessions() as session:
        texts = sorted(session.scalars(select(Caption.text)))
    assert texts == ["kept", "new one", "new two"]
    engine.dispose()


def test_latest_index_build_per_collection(db_url: str, tmp_path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        a = repo.get_or_create_collection(session, name="a", root=tmp_path)
        b = repo.get_or_create_collection(session, name="b", root=tmp_path)
        for collection, path in ((a, "a1"), (a, "a2"), (b, "b1")):
            repo.record_index_build(
                session,
                collection_id=collection.id,
                model_key="m",
                kind="photos",
                index_type="flat",
                path=tmp_path / path,
                vectors=1,
                dim=8,
                signature="x",
            )
    with sessions() as session:
        latest = repo.latest_index_builds(session, model_key="m", kind="photos")
        assert sorted(p.rsplit("/", 1)[1] for p in (b.path for b in latest)) == ["a2", "b1"]
        assert repo.latest_index_builds(session, model_key="m", kind="captions") == []
    engine.dispose()
