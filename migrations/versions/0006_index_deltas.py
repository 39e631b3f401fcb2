"""Incremental indexes: a log of changed vectors, delta segments on top of a base file, and watermarks.

vector_changes gets a row (kind, model key, photo or caption id) for every vector inserted, rewritten
or deleted, by triggers on photo_embeddings and caption_embeddings: cascaded deletes of photos and
captions included, whichever code path writes. index_builds records the newest change each build
covers (watermark) and the size of its base file; index_segments lists a build's delta files.
Builds from before this revision have no watermark, and the next run builds them afresh.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

VECTOR_TABLES = (("photo_embeddings", "photos", "photo_id"), ("caption_embeddings", "captions", "caption_id"))

SQLITE_TRIGGER = """
CREATE TRIGGER {table}_{event}_logged AFTER {when} ON {table}
BEGIN
    INSERT INTO vector_changes (kind, model_key, item_id) VALUES ('{kind}', {row}.model_key, {row}.{column});
END
"""

POSTGRES_FUNCTION = """
CREATE FUNCTION {table}_logged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO vector_changes (kind, model_key, item_id) VALUES ('{kind}', OLD.model_key, OLD.{column});
    ELSE
        INSERT INTO vector_changes (kind, model_key, item_id) VALUES ('{kind}', NEW.model_key, NEW.{column});
    END IF;
    RETURN NULL;
END
$$
"""

POSTGRES_TRIGGER = """
CREATE TRIGGER {table}_logged AFTER INSERT OR DELETE OR UPDATE OF vector ON {table}
FOR EACH ROW EXECUTE FUNCTION {table}_logged()
"""

SQLITE_EVENTS = (
    ("inserted", "INSERT", "NEW"),
    ("updated", "UPDATE OF vector", "NEW"),
    ("deleted", "DELETE", "OLD"),
)


def upgrade() -> None:
    op.create_table(
        "vector_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_key", sa.String(200), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_vector_changes_lookup", "vector_changes", ["model_key", "kind", "id"])
    op.create_table(
        "index_segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "build_id", sa.Integer(), sa.ForeignKey("index_builds.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Integer(), nullable=False),
    )
    op.create_index("ix_index_segments_build_id", "index_segments", ["build_id"])
    with op.batch_alter_table("index_builds") as batch:
        batch.add_column(sa.Column("watermark", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("base_vectors", sa.Integer(), nullable=True))
    _create_triggers()


def _create_triggers() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, kind, column in VECTOR_TABLES:
        names = {"table": table, "kind": kind, "column": column}
        if postgres:
            op.execute(POSTGRES_FUNCTION.format(**names))
            op.execute(POSTGRES_TRIGGER.format(**names))
            continue
        for event, when, row in SQLITE_EVENTS:
            op.execute(SQLITE_TRIGGER.format(event=event, when=when, row=row, **names))


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, _, _ in VECTOR_TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_logged ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_logged()")
            continue
        for event, _, _ in SQLITE_EVENTS:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_{event}_logged")
    with op.batch_alter_table("index_builds") as batch:
        batch.drop_column("base_vectors")
        batch.drop_column("watermark")
    op.drop_index("ix_index_segments_build_id", table_name="index_segments")
    op.drop_table("index_segments")
    op.drop_index("ix_vector_changes_lookup", table_name="vector_changes")
    op.drop_table("vector_changes")
