"""Index a folder the way the CLI does, and read back what SQL and the served index hold."""

from __future__ import annotations

from pathlib import Path

import faiss
from sqlalchemy import select

from app.core.config import Settings
from app.services.index_cache import IndexCache
from app.storage.db import make_engine, migrate, session_factory
from indexer.pipeline import IndexOptions, IndexReport, index_folder
from models.encoder import Encoder


def run_index(
    settings: Settings,
    encoder: Encoder,
    root: Path,
    captions: Path | None = None,
    collection: str = "default",
) -> IndexReport:
    engine = make_engine(settings.db_url)
    migrate(engine)
    try:
        return index_folder(
            root=root,
            collection=collection,
            encoder=encoder,
            sessions=session_factory(engine),
            index_dir=settings.index_dir,
            captions_file=captions,
            options=IndexOptions(batch_size=8, workers=0, show_progress=False),
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
        ids |= {int(i) for i in faiss.vector_to_array(loaded.index.id_map)}
    engine.dispose()
    return ids
