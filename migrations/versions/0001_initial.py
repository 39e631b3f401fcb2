"""Initial schema: collections, photos, embeddings, captions, index builds.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _photos_and_collections()
    _embeddings_and_captions()
    _index_builds()


def _collection_id() -> sa.Column:
    return sa.Column(
        "collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False
    )


def _photos_and_collections() -> None:
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("root", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "photos",
        sa.Column("id", _id, primary_key=True),
        _collection_id(),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("folder", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column("camera_make", sa.String(200), nullable=True),
        sa.Column("camera_model", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("collection_id", "path", name="uq_photos_collection_path"),
    )
    op.create_index("ix_photos_sha256", "photos", ["sha256"])
    op.create_index("ix_photos_taken_at", "photos", ["taken_at"])


def _embeddings_and_captions() -> None:
    op.create_table(
        "photo_embeddings",
        sa.Column("photo_id", _id, sa.ForeignKey("photos.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_key", sa.String(200), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "captions",
        sa.Column("id", _id, primary_key=True),
        sa.Column("photo_id", _id, sa.ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("source", sa.String(400), nullable=False),
    )
    op.create_index("ix_captions_photo_id", "captions", ["photo_id"])
    op.create_table(
        "caption_embeddings",
        sa.Column("caption_id", _id, sa.ForeignKey("captions.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("model_key", sa.String(200), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
    )


def _index_builds() -> None:
    op.create_table(
        "index_builds",
        sa.Column("id", sa.Integer(), primary_key=True),
        _collection_id(),
        sa.Column("model_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("index_type", sa.String(32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("vectors", sa.Integer(), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_index_builds_lookup", "index_builds", ["collection_id", "model_key", "kind"])


def downgrade() -> None:
    for table in (
        "index_builds",
        "caption_embeddings",
        "captions",
        "photo_embeddings",
        "photos",
        "collections",
    ):
        op.drop_table(table)
