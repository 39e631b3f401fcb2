"""A million photos: the full build, adding 1,000 more, server memory, query latency and recall.

Vectors are synthetic (clustered unit vectors at the default model's dimension, 512): embedding a
million real photos would take days on a CPU. Photo rows and vectors are inserted straight into SQL
(SQLite, executemany in chunks), so the database triggers log them as the indexer's writes are logged,
and then the real publish path (indexer/publish.py) builds the index from SQL, exactly as the end of a
`photosearch index` run does. Adding 1,000 photos is the same: rows into SQL, then publish, which
writes one delta and neither reads the collection's vectors nor touches the base.

The real app is then served by uvicorn (auth off) and real text queries are sent over HTTP (the model
embeds them); the server's memory is read from /proc (anonymous and file-backed resident pages
apart: a memory-mapped index shows as file pages the kernel may drop). Recall@10 compares the served
index (base + delta, loaded as the server loads it) with exact search by matrix product over every
vector, for queries near the data; the exact search's time in the same process is the baseline of
the index's.

    python benchmarks/million.py [--size 1000000] [--add 1000] [--queries 200]
                                 [--flat-max 50000] [--hnsw-max 500000] [--keep DIR [--reuse]] [--no-queries]

With the default limits a million vectors is an IVF-PQ index with exact re-ranking (above
--hnsw-max). --flat-max larger than --size makes the base exact (Flat), which needs no training.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from filters import QUERIES
from index_and_query import REPO, machine, percentile, start_server, wait_ready

sys.path.insert(0, str(REPO))

CHUNK = 5_000


def clustered_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """(n, dim) unit rows, each near one of 1,024 themes, so that a query has a real top 10."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((1024, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        part = centres[rng.integers(0, 1024, min(100_000, n - start))]
        part = part + 0.9 * rng.standard_normal(part.shape).astype(np.float32)
        out[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def insert(sessions, collection_id: int, encoder, vectors: np.ndarray, first_id: int) -> None:  # noqa: ANN001
    """Photo rows and their vectors with each vector's query-bank offset beside it (as the indexer
    stores them), CHUNK rows a statement, committed every chunk."""
    from sqlalchemy import insert as sql_insert

    from app.storage.tables import Photo, PhotoEmbedding
    from indexer.embedding import hub_offsets

    for start in range(0, len(vectors), CHUNK):
        ids = range(first_id + start, first_id + min(start + CHUNK, len(vectors)))
        photos = [
            {"id": i, "collection_id": collection_id, "path": f"/photos/IMG_{i:07d}.jpg", "folder": "",
             "size": 3_000_000, "mtime_ns": 1, "sha256": f"{i:064x}", "status": "ok"}
            for i in ids
        ]  # fmt: skip
        offsets = hub_offsets(encoder, vectors[start : start + len(ids)], "photos")
        rows = [
            {"photo_id": i, "model_key": encoder.key, "vector": vectors[i - first_id].tobytes(),
             "hub_offset": None if offsets is None else float(offsets[i - first_id - start])}
            for i in ids
        ]  # fmt: skip
        with sessions.begin() as session:
            session.execute(sql_insert(Photo), photos)
            session.execute(sql_insert(PhotoEmbedding), rows)


def publish_now(sessions, collection_id: int, encoder, settings) -> tuple[str, int] | None:  # noqa: ANN001
    from app.storage.db import transaction
    from indexer.publish import publish

    with transaction(sessions) as session:
        return publish(
            session,
            collection="bench",
            collection_id=collection_id,
            encoder=encoder,
            kind="photos",
            index_dir=settings.index_dir,
            settings=settings.indexer,
        )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the machine was around the figures."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def server_memory(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile of a process, in MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def query_over_http(data_dir: Path, count: int) -> dict[str, float]:
    server, url = start_server(data_dir, quiet=True)
    try:
        with httpx.Client(base_url=url, timeout=300) as client:
            wait_ready(client)
            ready = server_memory(server.pid)
            rounds = [timed_queries(client, count, f"{round_}") for round_ in ("", "again")]
            after = server_memory(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    first, then = rounds  # right after start (the index still being read into the page cache), then warm
    return {
        "p50_ms": 1000 * percentile(first, 50),
        "p99_ms": 1000 * percentile(first, 99),
        "warm_p50_ms": 1000 * percentile(then, 50),
        "warm_p99_ms": 1000 * percentile(then, 99),
        **{f"ready_{k}_mib": v for k, v in ready.items()},
        **{f"queried_{k}_mib": v for k, v in after.items()},
    }


def timed_queries(client: httpx.Client, count: int, suffix: str) -> list[float]:
    """Seconds of each of `count` text searches (k=10) after 10 warm-up ones; suffix: other query texts."""
    latencies = []
    for i in range(-10, count):
        query = f"{QUERIES[i % len(QUERIES)]} {suffix}".strip()
        started = time.perf_counter()
        client.post("/v1/search/text", json={"query": query, "k": 10}).raise_for_status()
        if i >= 0:
            latencies.append(time.perf_counter() - started)
    return latencies


def recall_at_10(sessions, key: str, vectors: np.ndarray, count: int) -> dict[str, float]:  # noqa: ANN001
    """The served index (as the server loads it) against exact search over `vectors` (ids 1..n)."""
    from app.services.index_cache import IndexCache

    rng = np.random.default_rng(7)
    queries = vectors[rng.choice(len(vectors), count, replace=False)]
    queries = queries + 0.5 * rng.standard_normal(queries.shape).astype(np.float32) / np.sqrt(
        vectors.shape[1]
    )
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    (loaded,) = IndexCache(sessions, key).current("photos")
    started = time.perf_counter()
    found = np.stack([loaded.index.search(q[None, :], 10)[1][0] for q in queries])
    served_s = (time.perf_counter() - started) / count
    started = time.perf_counter()
    exact = np.stack([np.argsort(-(vectors @ q))[:10] + 1 for q in queries[: min(count, 50)]])
    exact_s = (time.perf_counter() - started) / len(exact)
    hits = [len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), exact.tolist(), strict=False)]
    return {"recall_at_10": float(np.mean(hits)), "index_ms": 1000 * served_s, "exact_ms": 1000 * exact_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--add", type=int, default=1_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--flat-max", type=int, default=50_000)
    parser.add_argument("--hnsw-max", type=int, default=500_000)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it")
    parser.add_argument("--reuse", action="store_true", help="with --keep: measure a folder built before")
    parser.add_argument("--no-queries", action="store_true", help="build and add only: no recall, no server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(args, args.keep or Path(tmp))


def run(args: argparse.Namespace, base: Path) -> None:
    from app.core.config import Settings
    from app.storage import repository as repo
    from cli.context import open_encoder, open_sessions

    print(f"machine: {machine()}; load average {load_average()} at the start", flush=True)
    settings = Settings(data_dir=base / "data")
    settings.indexer.flat_max_vectors, settings.indexer.hnsw_max_vectors = args.flat_max, args.hnsw_max
    sessions = open_sessions(settings)
    encoder = open_encoder(settings, sessions)  # as the store holds it (a kept build: its own key)
    with sessions.begin() as session:
        collection_id = repo.get_or_create_collection(session, name="bench", root=Path("/photos")).id
    figures: dict[str, float] = {}
    vectors = clustered_vectors(args.size + args.add, encoder.dim, seed=1)
    steps = (("", vectors[: args.size], 1), ("add_", vectors[args.size :], args.size + 1))
    for label, rows, first in () if args.reuse else steps:
        started = time.perf_counter()
        insert(sessions, collection_id, encoder, rows, first_id=first)
        figures[f"{label}insert_s"] = time.perf_counter() - started
        started = time.perf_counter()
        served = publish_now(sessions, collection_id, encoder, settings)
        figures[f"{label}publish_s"] = time.perf_counter() - started
        print(
            f"{len(rows):,} vectors inserted in {figures[f'{label}insert_s']:.2f} s; "
            f"published {served} in {figures[f'{label}publish_s']:.2f} s",
            flush=True,
        )
    report_files(sessions, encoder.key, figures)
    if args.no_queries:
        return
    figures |= recall_at_10(sessions, encoder.key, vectors, min(args.queries, 200))
    speedup = figures["exact_ms"] / figures["index_ms"]
    print(
        f"recall@10 {figures['recall_at_10']:.3f}; in-process search {figures['index_ms']:.2f} ms "
        f"vs exact {figures['exact_ms']:.1f} ms ({speedup:.0f}× faster)",
        flush=True,
    )
    del vectors
    figures |= query_over_http(base / "data", args.queries)
    for name, value in figures.items():
        print(f"{name}: {value:,.2f}")
    print(f"load average {load_average()} at the end (other work on the machine inflates every time)")


def report_files(sessions, key: str, figures: dict[str, float]) -> None:  # noqa: ANN001
    from app.storage import repository as repo

    with sessions() as session:
        (build,) = repo.latest_index_builds(session, model_key=key, kind="photos")
        figures["base_file_mib"] = Path(build.path).stat().st_size / 2**20
        figures["segments"] = len(build.segments)
        figures["delta_files_mib"] = sum(Path(s.path).stat().st_size for s in build.segments) / 2**20
        started = time.perf_counter()
        np.load(Path(build.path).with_suffix(".ids.npy"))
        figures["base_ids_read_ms"] = 1000 * (time.perf_counter() - started)
    print(
        f"served: {build.index_type}, base {figures['base_file_mib']:.0f} MiB, {len(build.segments)} "
        f"delta(s) {figures['delta_files_mib']:.1f} MiB, base id list read in "
        f"{figures['base_ids_read_ms']:.0f} ms",
        flush=True,
    )


if __name__ == "__main__":
    main()
