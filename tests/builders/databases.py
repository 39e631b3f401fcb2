"""Database helpers: an empty PostgreSQL schema, migrations to a revision, the tables that exist."""

from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, inspect, text

from app.storage.db import alembic_config, make_engine


def reset_postgres(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def run_migration(url: str, action: str, revision: str) -> None:
    engine = make_engine(url)
    config = alembic_config(url)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)
    engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
