"""Engine, sessions and migrations. SQLite by default; PostgreSQL through the URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from models.errors import NotReadyError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
MIGRATION_LOCK_KEY = 0x70686F746F  # any fixed 64-bit number: PostgreSQL advisory lock for migrations


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # reads through a memory map and a larger page cache: a search looks up a few hundred rows
            cursor.execute("PRAGMA mmap_size=17179869184")  # SQLite caps it at its build's limit
            cursor.execute("PRAGMA cache_size=-65536")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        connection = engine.connect()
    except OperationalError as exc:
        # The first connection of every command and of the server: say which database, never its password.
        reason = " ".join(str(exc.orig or exc).split())
        where = engine.url.render_as_string(hide_password=True)
        raise NotReadyError(
            f"cannot reach the database at {where}: {reason} (check PHOTOSEARCH_DATABASE_URL)"
        ) from exc
    with connection, connection.begin():
        if connection.dialect.name == "postgresql":
            # Replicas starting at once: the first migrates, the others wait here (the lock ends
            # with this transaction) and then find the schema at head. SQLite's writes lock the file.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session
