"""Zero-shot photo tags: each photo's best labels from a label set, usable as a search filter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "photo_tags",
        sa.Column("id", _id, primary_key=True),
        sa.Column("photo_id", _id, sa.ForeignKey("photos.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tag", sa.String(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("photo_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("photo_id", "source", "tag", name="uq_photo_tags_photo_source_tag"),
    )
    op.create_index("ix_photo_tags_tag", "photo_tags", ["tag"])


def downgrade() -> None:
    op.drop_index("ix_photo_tags_tag", table_name="photo_tags")
    op.drop_table("photo_tags")
