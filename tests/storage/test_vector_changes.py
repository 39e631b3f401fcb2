"""Migration 0006: every vector written, rewritten or deleted (cascades included) is logged by the
database itself, on SQLite and PostgreSQL; the log is pruned only up to what every build covers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, select

from app.storage.db import make_engine, session_factory, transaction
from app.storage.repository.vector_changes import change_watermark, changed_ids, prune_changes
from app.storage.tables import (
    Caption,
    CaptionEmbedding,
    Collection,
    IndexBuild,
    Photo,
    PhotoEmbedding,
    VectorChange,
)
from tests.builders.databases import run_migration, table_names


def _photo_with_vector(sessions, name: str) -> int:  # noqa: ANN001
    with transaction(sessions) as session:
        collection = Collection(name=name, root=f"/{name}")
        session.add(collection)
        session.flush()
        photo = Photo(collection_id=collection.id, path=f"/{name}/a.jpg", size=1, mtime_ns=1, sha256="a" * 64)
        session.add(photo)
        session.flush()
        session.add(PhotoEmbedding(photo_id=photo.id, model_key="m", vector=b"\0" * 8))
        return photo.id


def _log(sessions) -> list[tuple[str, int]]:  # noqa: ANN001
    with sessions() as session:
        return [(c.kind, c.item_id) for c in session.scalars(select(VectorChange).order_by(VectorChange.id))]


def test_writes_rewrites_and_cascaded_deletes_are_logged_and_the_migration_reverses(db_url: str) -> None:
    run_migration(db_url, "upgrade", "head")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    photo_id = _photo_with_vector(sessions, "a")
    with transaction(sessions) as session:
        caption = Caption(photo_id=photo_id, text="a dog")
        session.add(caption)
        session.flush()
        session.add(CaptionEmbedding(caption_id=caption.id, model_key="m", vector=b"\0" * 8))
    with transaction(sessions) as session:
        session.merge(PhotoEmbedding(photo_id=photo_id, model_key="m", vector=b"\1" * 8))
    with transaction(sessions) as session:
        session.execute(delete(Photo).where(Photo.id == photo_id))  # vector and caption go with it
    log = _log(sessions)
    engine.dispose()
    assert log[:3] == [("photos", photo_id), ("captions", caption.id), ("photos", photo_id)]
    assert sorted(log[3:]) == [("captions", caption.id), ("photos", photo_id)]

    run_migration(db_url, "downgrade", "0005")
    assert {"vector_changes", "index_segments"} & table_names(db_url) == set()
    engine = make_engine(db_url)
    _photo_with_vector(session_factory(engine), "b")  # no trigger left behind to fail
    engine.dispose()
    run_migration(db_url, "upgrade", "head")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    _photo_with_vector(sessions, "c")
    assert len(_log(sessions)) == 1
    engine.dispose()


def test_changes_are_read_between_watermarks_and_pruned_up_to_the_oldest_build(
    db_url: str, tmp_path: Path
) -> None:
    run_migration(db_url, "upgrade", "head")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    first, second = _photo_with_vector(sessions, "a"), _photo_with_vector(sessions, "b")
    with sessions() as session:
        upto = change_watermark(session)
        assert changed_ids(session, model_key="m", kind="photos", after=0, upto=upto) == [first, second]
        assert changed_ids(session, model_key="m", kind="photos", after=upto - 1, upto=upto) == [second]
    with transaction(sessions) as session:
        for collection_id, watermark in ((1, upto - 1), (2, upto)):
            session.add(
                IndexBuild(
                    collection_id=collection_id,
                    model_key="m",
                    kind="photos",
                    index_type="flat",
                    path=str(tmp_path / f"{collection_id}.faiss"),
                    vectors=1,
                    dim=2,
                    signature="",
                    watermark=watermark,
                )
            )
    with transaction(sessions) as session:
        assert prune_changes(session, model_key="m", kind="photos") == 1  # collection 1 still needs the rest
    assert _log(sessions) == [("photos", second)]
    engine.dispose()
