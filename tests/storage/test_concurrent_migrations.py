"""Several replicas starting at once on a fresh PostgreSQL database: one migrates, the others wait."""

from __future__ import annotations

import threading

from sqlalchemy import text

from app.storage.db import make_engine, migrate
from tests.builders.databases import reset_postgres, table_names


def test_replicas_migrating_at_once_all_start(postgres_url: str) -> None:
    reset_postgres(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(6)]
    start, failures = threading.Barrier(len(engines)), []

    def start_replica(index: int) -> None:
        start.wait()
        try:
            migrate(engines[index])
        except Exception as exc:  # noqa: BLE001 - every failure is reported by the assertion below
            failures.append(repr(exc))

    threads = [threading.Thread(target=start_replica, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert failures == []
    with engines[0].connect() as connection:
        versions = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    for engine in engines:
        engine.dispose()
    assert len(versions) == 1 and {"photos", "api_keys"} <= table_names(postgres_url)
