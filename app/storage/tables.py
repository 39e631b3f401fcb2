"""SQL tables. Alembic migrations (migrations/) are the only way this schema changes."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Collection(Base):
    """A named set of photos from one or more folders (collection_folders); `root` is its first folder,
    or the folder that came to hold it when a parent folder was indexed."""

    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    root: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CollectionFolder(Base):
    """A folder indexed into a collection. Folders of one collection never nest: indexing a parent
    folder replaces its registered sub-folders, indexing a sub-folder keeps its parent."""

    __tablename__ = "collection_folders"
    __table_args__ = (
        UniqueConstraint("collection_id", "path", name="uq_collection_folders_collection_path"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # absolute, resolved
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Photo(Base):
    __tablename__ = "photos"
    __table_args__ = (
        UniqueConstraint("collection_id", "path", name="uq_photos_collection_path"),
        Index("ix_photos_sha256", "sha256"),
        Index("ix_photos_taken_at", "taken_at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(Text)  # absolute
    folder: Mapped[str] = mapped_column(Text, default="")  # relative to its collection folder
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | ok | skipped
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    camera_make: Mapped[str | None] = mapped_column(String(200), nullable=True)
    camera_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    collection: Mapped[Collection] = relationship(lazy="joined")
    captions: Mapped[list[Caption]] = relationship(
        back_populates="photo",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Caption.id",
    )
    tags: Mapped[list[PhotoTag]] = relationship(
        order_by="PhotoTag.score.desc()",
        viewonly=True,  # rows owned by indexer/labels.py
    )


class PhotoEmbedding(Base):
    """One vector per (photo, exact model weights): the source the FAISS index is built from."""

    __tablename__ = "photo_embeddings"
    # a search reads the offsets of its candidates from this index alone, not from the wide rows
    __table_args__ = (Index("ix_photo_embeddings_offsets", "model_key", "photo_id", "hub_offset"),)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True)
    model_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, unit length
    # query-bank hubness offset (models/query_bank.py) for models that have a bank, else NULL
    hub_offset: Mapped[float | None] = mapped_column(Float, nullable=True)


class Caption(Base):
    __tablename__ = "captions"
    __table_args__ = (Index("ix_captions_photo_id", "photo_id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(400), default="")

    photo: Mapped[Photo] = relationship(back_populates="captions")


class CaptionEmbedding(Base):
    __tablename__ = "caption_embeddings"
    __table_args__ = (Index("ix_caption_embeddings_offsets", "model_key", "caption_id", "hub_offset"),)
    caption_id: Mapped[int] = mapped_column(ForeignKey("captions.id", ondelete="CASCADE"), primary_key=True)
    model_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    hub_offset: Mapped[float | None] = mapped_column(Float, nullable=True)


class IndexBuild(Base):
    """What is served for (collection, model, kind); the newest build is. `path` is the base FAISS file;
    `segments` are the delta files on top of it, oldest first (indexer/publish.py). `watermark` is the
    newest vector_changes row the build covers (NULL: built before changes were logged; the next run
    builds afresh)."""

    __tablename__ = "index_builds"
    __table_args__ = (Index("ix_index_builds_lookup", "collection_id", "model_key", "kind"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    model_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))  # photos | captions
    index_type: Mapped[str] = mapped_column(String(32))  # flat | hnsw | ivfpq
    path: Mapped[str] = mapped_column(Text)
    vectors: Mapped[int] = mapped_column(Integer)
    dim: Mapped[int] = mapped_column(Integer)
    signature: Mapped[str] = mapped_column(String(64))  # sha256 of the base's ids + vectors
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    watermark: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    base_vectors: Mapped[int | None] = mapped_column(Integer, nullable=True)  # vectors in the base file

    segments: Mapped[list[IndexSegment]] = relationship(
        order_by="IndexSegment.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )


class IndexSegment(Base):
    """A delta file of a build: vectors added or changed since its base, and ids removed since. Later
    segments win over earlier ones and over the base. Builds that follow one another share files."""

    __tablename__ = "index_segments"
    __table_args__ = (Index("ix_index_segments_build_id", "build_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    build_id: Mapped[int] = mapped_column(ForeignKey("index_builds.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    added: Mapped[int] = mapped_column(Integer)  # vectors in the file
    removed: Mapped[int] = mapped_column(Integer)  # ids it removes


class VectorChange(Base):
    """One row per vector written, rewritten or deleted, appended by database triggers on
    photo_embeddings and caption_embeddings (migration 0006), so every writer is covered. Ids only
    grow (AUTOINCREMENT on SQLite, a sequence on PostgreSQL); a build records the newest it covers,
    and rows every latest build covers are pruned."""

    __tablename__ = "vector_changes"
    __table_args__ = (
        Index("ix_vector_changes_lookup", "model_key", "kind", "id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # photos | captions
    model_key: Mapped[str] = mapped_column(String(200))
    item_id: Mapped[int] = mapped_column(BigInteger)  # photo id or caption id


# --- zero-shot tags: indexer/labels.py writes, the tags search filter reads ---
class PhotoTag(Base):
    """A label that fits a photo, with its zero-shot probability; `source` names the label set and model."""

    __tablename__ = "photo_tags"
    __table_args__ = (
        UniqueConstraint("photo_id", "source", "tag", name="uq_photo_tags_photo_source_tag"),
        Index("ix_photo_tags_tag", "tag"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    photo_id: Mapped[int] = mapped_column(ForeignKey("photos.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(String(200))  # stored lower-case: filters match case-insensitively
    score: Mapped[float] = mapped_column(Float)  # probability among the label set, 0..1
    source: Mapped[str] = mapped_column(String(300))  # "zeroshot:<label set digest>@<model key>"
    photo_sha256: Mapped[str] = mapped_column(String(64))  # content tagged: a changed file is re-tagged
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# --- API keys: `photosearch keys` writes, the server reads per request (app/services/keys.py) ---
class ApiKey(Base):
    """A named key. Only the sha256 of its token is stored; the token is shown once, at creation.
    all_collections: every collection, present and future; else those in api_key_collections."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    all_collections: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiKeyCollection(Base):
    __tablename__ = "api_key_collections"
    key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    collection_id: Mapped[int] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), primary_key=True
    )
