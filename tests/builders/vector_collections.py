"""A collection of photos with synthetic unit vectors written straight into SQL, published the way
`photosearch index` publishes, and read back through the server's IndexCache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
from sqlalchemy import Engine, delete, select

from app.core.config import IndexerSettings
from app.services.index_cache import IndexCache
from app.storage.db import make_engine, migrate, session_factory, transaction
from app.storage.layered_index import LayeredIndex
from app.storage.repository import to_blob
from app.storage.tables import Caption, CaptionEmbedding, Collection, IndexBuild, Photo, PhotoEmbedding
from app.storage.vector_index import IndexPlan, build_index
from indexer.publish import index_folder_for, publish, sweep_leftovers
from models.encoder import Encoder

DIM = 16


@dataclass(frozen=True)
class VectorModel:
    """What publishing needs of a model: its key and dimension."""

    key: str = "synthetic-16"
    dim: int = DIM


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@dataclass
class VectorCollection:
    db_url: str
    index_dir: Path
    name: str = "synthetic"
    settings: IndexerSettings = field(default_factory=IndexerSettings)
    model: VectorModel = field(default_factory=VectorModel)
    seed: int = 0

    def __post_init__(self) -> None:
        self.engine: Engine = make_engine(self.db_url)
        migrate(self.engine)
        self.sessions = session_factory(self.engine)
        with transaction(self.sessions) as session:
            collection = session.scalar(select(Collection).where(Collection.name == self.name))
            if collection is None:
                collection = Collection(name=self.name, root="/synthetic")
                session.add(collection)
                session.flush()
            self.collection_id = collection.id
            self.seed = max(self.seed, len(session.scalars(select(Photo.id)).all()) * 1000)

    @property
    def folder(self) -> Path:
        return index_folder_for(self.index_dir, self.name, self.model.key)

    def add(self, n: int) -> list[int]:
        """n new photos with vectors; their ids."""
        vectors = self._next_vectors(n)
        with transaction(self.sessions) as session:
            photos = [self._photo(session) for _ in range(n)]
            for photo, vector in zip(photos, vectors, strict=True):
                session.add(
                    PhotoEmbedding(photo_id=photo.id, model_key=self.model.key, vector=to_blob(vector))
                )
        return [photo.id for photo in photos]

    def add_captions(self, photo_id: int, n: int) -> list[int]:
        vectors = self._next_vectors(n)
        with transaction(self.sessions) as session:
            captions = [Caption(photo_id=photo_id, text=f"caption {i}") for i in range(n)]
            session.add_all(captions)
            session.flush()
            for caption, vector in zip(captions, vectors, strict=True):
                session.add(
                    CaptionEmbedding(caption_id=caption.id, model_key=self.model.key, vector=to_blob(vector))
                )
        return [caption.id for caption in captions]

    def change(self, photo_ids: list[int]) -> None:
        """New content: the vector is deleted and written again, as the indexer does."""
        vectors = self._next_vectors(len(photo_ids))
        with transaction(self.sessions) as session:
            session.execute(delete(PhotoEmbedding).where(PhotoEmbedding.photo_id.in_(photo_ids)))
            for photo_id, vector in zip(photo_ids, vectors, strict=True):
                session.add(
                    PhotoEmbedding(photo_id=photo_id, model_key=self.model.key, vector=to_blob(vector))
                )

    def remove(self, photo_ids: list[int]) -> None:
        with transaction(self.sessions) as session:
            for photo_id in photo_ids:
                session.delete(session.get(Photo, photo_id))

    def remove_captions(self, caption_ids: list[int]) -> None:
        with transaction(self.sessions) as session:
            session.execute(delete(Caption).where(Caption.id.in_(caption_ids)))

    def publish(self, kind: str = "photos") -> tuple[str, int] | None:
        """One publish as the end of an index run makes it: sweep, then build, in one transaction."""
        with transaction(self.sessions) as session:
            sweep_leftovers(
                session, folder=self.folder, collection_id=self.collection_id, model_key=self.model.key
            )
            return publish(
                session,
                collection=self.name,
                collection_id=self.collection_id,
                encoder=cast(Encoder, self.model),
                kind=kind,
                index_dir=self.index_dir,
                settings=self.settings,
            )

    def sql_vectors(self, kind: str = "photos") -> dict[int, np.ndarray]:
        table: Any = PhotoEmbedding if kind == "photos" else CaptionEmbedding
        column = table.photo_id if kind == "photos" else table.caption_id
        with self.sessions() as session:
            rows = session.execute(select(column, table.vector)).tuples()
            return {int(i): np.frombuffer(v, np.float32) for i, v in rows}

    def builds(self, kind: str = "photos") -> list[IndexBuild]:
        with self.sessions() as session:
            return list(
                session.scalars(select(IndexBuild).where(IndexBuild.kind == kind).order_by(IndexBuild.id))
            )

    def served(self, kind: str = "photos") -> LayeredIndex:
        """What a server starting now would search (a fresh IndexCache)."""
        loaded = IndexCache(self.sessions, self.model.key).current(kind, [self.collection_id])
        assert len(loaded) == 1
        return loaded[0].index

    def fresh_index(self, kind: str = "photos") -> faiss.Index:
        """An exact index built from scratch from what SQL holds now."""
        vectors = self.sql_vectors(kind)
        ids = np.array(sorted(vectors), dtype=np.int64)
        rows = np.stack([vectors[i] for i in ids]) if len(ids) else np.zeros((0, DIM), np.float32)
        return build_index(rows, ids, IndexPlan("flat", "Flat"))

    def _photo(self, session: Any) -> Photo:
        self.seed += 1
        photo = Photo(
            collection_id=self.collection_id,
            path=f"/synthetic/{self.seed}.jpg",
            size=1,
            mtime_ns=1,
            sha256=f"{self.seed:064d}",
            status="ok",
        )
        session.add(photo)
        session.flush()
        return photo

    def _next_vectors(self, n: int) -> np.ndarray:
        self.seed += 1
        return unit_rows(n, 1000 + self.seed)
