"""Covering indexes for the query-bank offsets a text search reads for its candidates: (model, id,
offset), so a lookup reads a few dense index pages instead of one wide vector row per candidate.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_photo_embeddings_offsets", "photo_embeddings", ["model_key", "photo_id", "hub_offset"]
    )
    op.create_index(
        "ix_caption_embeddings_offsets", "caption_embeddings", ["model_key", "caption_id", "hub_offset"]
    )


def downgrade() -> None:
    op.drop_index("ix_caption_embeddings_offsets", table_name="caption_embeddings")
    op.drop_index("ix_photo_embeddings_offsets", table_name="photo_embeddings")
