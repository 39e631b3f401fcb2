"""Index a folder the way the CLI does, and read back what SQL and the served index hold."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from app.core.config import Settings
from app.services.index_cache import IndexCache
from app.storage.db import make_engine, migrate, session_factory
from app.storage.tables import Photo, PhotoTag
from indexer.embedding import PhotoSource
from indexer.inputs import read_captions_file
from indexer.labels import LabelOptions
from indexer.pipeline import IndexReport, index_folder
from models.encoder import Encoder


def run_index(
    settings: Settings,
    encoder: Encoder,
    root: Path,
    captions: Path | None = None,
    collection: str = "default",
    labels: LabelOptions | None = None,
    allow_empty: bool = False,
    *,
    batch_size: int = 8,
    workers: int = 0,
    photo_source: PhotoSource | None = None,
) -> IndexReport:
    """One run as `photosearch index` makes it, by default in batches of 8 photos decoded in-process."""
    engine = make_engine(settings.db_url)
    migrate(engine)
    try:
        return index_folder(
            root=root,
            collection=collection,
            encoder=encoder,
            sessions=session_factory(engine),
            index_dir=settings.index_dir,
            captions=read_captions_file(captions) if captions is not None else None,
            labels=labels,
            settings=settings.indexer.model_copy(update={"batch_size": batch_size, "workers": workers}),
            show_progress=False,
            allow_empty=allow_empty,
            photo_source=photo_source,
        )
    finally:
        engine.dispose()


def table(settings: Settings, model):  # noqa: ANN001, ANN201
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session:
        rows = list(session.scalars(select(model)))
    engine.dispose()
    return rows


def served_ids(settings: Settings, encoder: Encoder, kind: str = "photos") -> set[int]:
    engine = make_engine(settings.db_url)
    cache = IndexCache(session_factory(engine), encoder.key)
    ids = set()
    for loaded in cache.current(kind):
        ids |= {int(i) for i in loaded.index.ids()}
    engine.dispose()
    return ids


def photo_ids_by_path(settings: Settings) -> dict[str, int]:
    return {row.path: row.id for row in table(settings, Photo)}


def tags_by_path(settings: Settings) -> dict[str, set[str]]:
    """Every photo's path → its tag names (empty for an untagged photo)."""
    tags: dict[str, set[str]] = {row.path: set() for row in table(settings, Photo)}
    paths = {row.id: row.path for row in table(settings, Photo)}
    for tag in table(settings, PhotoTag):
        tags[paths[tag.photo_id]].add(tag.tag)
    return tags
