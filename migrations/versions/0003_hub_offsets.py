"""Hubness offsets beside each vector, for models with a query bank (models/query_bank.py).

Text→photo and photo→caption searches rank by cosine minus this offset; the indexer computes it with
the vector, so a query reads it instead of comparing its candidates with the bank. NULL for models
without a bank.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photo_embeddings") as batch:
        batch.add_column(sa.Column("hub_offset", sa.Float(), nullable=True))
    with op.batch_alter_table("caption_embeddings") as batch:
        batch.add_column(sa.Column("hub_offset", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("caption_embeddings") as batch:
        batch.drop_column("hub_offset")
    with op.batch_alter_table("photo_embeddings") as batch:
        batch.drop_column("hub_offset")
