"""A collection holds several folders: collection_folders, filled from each collection's root.

Before this, indexing a second folder (or a sub-folder) into a collection treated every photo
outside it as deleted. A run now removes only files gone from the folder it scanned.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "collection_folders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "collection_id",
            sa.Integer(),
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("collection_id", "path", name="uq_collection_folders_collection_path"),
    )
    op.execute(
        "INSERT INTO collection_folders (collection_id, path, added_at) "
        "SELECT id, root, created_at FROM collections"
    )


def downgrade() -> None:
    op.drop_table("collection_folders")
