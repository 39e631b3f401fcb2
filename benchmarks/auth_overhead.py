"""What API keys cost: text-query p50/p99 over real HTTP with auth on and off, in one run.

Indexes some shared Flickr8k photos into a fresh data dir, creates a key, starts two uvicorn servers
over the same data (auth on, auth off) and sends the same text queries to both, alternating, so that
drift on the machine hits both alike. Also times the key check alone, from the cache and from SQL.

    python benchmarks/auth_overhead.py [--limit 300] [--queries 300]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
from index_and_query import REPO, SHARED, index, machine, percentile, start_server, wait_ready

sys.path.insert(0, str(REPO))


def copy_photos(base: Path, limit: int) -> tuple[Path, list[str]]:
    """Copies of the first `limit` shared photos (links out of the folder are left out by the scan
    rules), and a caption of each as the queries."""
    folder, queries = base / "photos", []
    folder.mkdir()
    with open(SHARED / "captions.jsonl", encoding="utf-8") as handle:
        for line in itertools.islice(handle, limit):
            row = json.loads(line)
            shutil.copy(SHARED / row["image"], folder / Path(row["image"]).name)
            queries.append(row["captions"][0].removesuffix(" ."))
    return folder, queries


def query_both(clients: dict[str, httpx.Client], queries: list[str], count: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {name: [] for name in clients}
    names = list(clients)
    for i in range(-10, count):  # the first 10: warm-up, not counted
        for name in names if i % 2 else names[::-1]:  # each server goes first half the time
            client = clients[name]
            started = time.perf_counter()
            client.post(
                "/v1/search/text", json={"query": queries[i % len(queries)], "k": 20}
            ).raise_for_status()
            if i >= 0:
                latencies[name].append(time.perf_counter() - started)
    return latencies


def key_check_cost(base: Path, token: str, count: int = 2000) -> dict[str, float]:
    """Microseconds per check: within the cache window, and with every check going to SQL."""
    from app.core.config import Settings
    from app.services.keys import KeyService
    from app.storage.db import make_engine, session_factory

    sessions = session_factory(make_engine(Settings(data_dir=base / "data").db_url))
    figures = {}
    for name, cache_seconds in (("cached_us", 60.0), ("sql_us", 0.0)):
        keys = KeyService(sessions, cache_seconds)
        keys.scope_for(token)
        started = time.perf_counter()
        for _ in range(count):
            assert keys.scope_for(token) is not None
        figures[name] = (time.perf_counter() - started) / count * 1e6
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="photos to index")
    parser.add_argument("--queries", type=int, default=300, help="queries sent to each server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        folder, queries = copy_photos(base, args.limit)
        indexed = index(base, folder, workers=1)
        from app.core.config import Settings
        from app.services.keys import KeyService
        from app.storage.db import make_engine, session_factory

        sessions = session_factory(make_engine(Settings(data_dir=base / "data").db_url))
        token = KeyService(sessions).create("bench")
        servers = {
            "auth on": start_server(base / "data", auth=True),
            "auth off": start_server(base / "data", auth=False),
        }
        headers = {"auth on": {"Authorization": f"Bearer {token}"}, "auth off": {}}
        try:
            clients = {
                name: httpx.Client(base_url=url, timeout=60, headers=headers[name])
                for name, (_, url) in servers.items()
            }
            for client in clients.values():
                wait_ready(client)
            latencies = query_both(clients, queries, args.queries)
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)
        print(f"machine: {machine()}; {indexed['photos']} photos indexed; {args.queries} queries per server")
        for name, values in latencies.items():
            p50, p99 = 1000 * percentile(values, 50), 1000 * percentile(values, 99)
            print(f"{name:>8}: p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
        cost = key_check_cost(base, token)
        cached, sql = cost["cached_us"], cost["sql_us"]
        print(f"key check alone: {cached:.1f} µs from the cache, {sql:.1f} µs from SQL (SQLite)")


if __name__ == "__main__":
    main()
