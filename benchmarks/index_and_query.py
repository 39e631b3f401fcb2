"""Indexing throughput and query latency of the default model on this machine.

1. Indexes the shared Flickr8k photos (7,091) into a fresh data dir: photos/s end to end
   (scan + hash + decode + embed + SQL + FAISS) and for the embedding stage alone.
2. Serves them with uvicorn and sends text queries over real HTTP: p50/p99 latency, against
   the same search called in-process (the baseline) and the text embedding alone.

    python benchmarks/index_and_query.py [--limit N] [--queries 300] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "flickr8k"


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, {gpu}, torch {torch.__version__}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def build_folder(base: Path, limit: int | None) -> tuple[Path, list[str]]:
    """Link (or, across file systems, copy) the shared photos into one folder and collect val captions.
    Not symlinks: the indexer does not follow links that lead out of the folder it scans."""
    folder = base / "photos"
    folder.mkdir()
    captions = []
    with open(SHARED / "captions.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    for row in rows[:limit]:
        link_or_copy(SHARED / row["image"], folder / Path(row["image"]).name)
        if row["split"] == "val":
            captions.append(row["captions"][0].removesuffix(" ."))
    return folder, captions or [rows[0]["captions"][0]]


def index(base: Path, folder: Path, workers: int) -> dict[str, float]:
    from app.core.config import Settings
    from app.storage.db import make_engine, migrate, session_factory
    from indexer.pipeline import index_folder
    from models.registry import create_encoder

    settings = Settings(data_dir=base / "data", device="auto")
    encoder = create_encoder(settings.model, device=settings.device)
    engine = make_engine(settings.db_url)
    migrate(engine)
    started = time.perf_counter()
    report = index_folder(
        root=folder,
        collection="bench",
        encoder=encoder,
        sessions=session_factory(engine),
        index_dir=settings.index_dir,
        settings=settings.indexer.model_copy(update={"workers": workers}),
    )
    seconds = time.perf_counter() - started
    return {"photos": report.embedded, "seconds": seconds, "photos_per_s": report.embedded / seconds}


def start_server(
    data_dir: Path, *, auth: bool = False, quiet: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    """The real app under uvicorn in its own process, on a free loopback port → (process, base URL).
    quiet: drop its output (the app logs a line a request)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "PHOTOSEARCH_DATA_DIR": str(data_dir),
        "PHOTOSEARCH_AUTH__REQUIRED": str(auth).lower(),
    }
    command = [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)]
    output = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL} if quiet else {}
    server = subprocess.Popen([*command, "--log-level", "warning"], cwd=REPO, env=env, **output)
    return server, f"http://127.0.0.1:{port}"


def wait_ready(client: httpx.Client, tries: int = 1200) -> None:
    """Until /ready answers 200, polling every half second."""
    for _ in range(tries):
        try:
            if client.get("/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{client.base_url} never became ready")


def serve_and_query(base: Path, queries: list[str], count: int) -> dict[str, float]:
    server, url = start_server(base / "data")
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            wait_ready(client)
            for query in queries[:10]:  # warm-up
                client.post("/v1/search/text", json={"query": query, "k": 20})
            latencies = []
            for i in range(count):
                started = time.perf_counter()
                response = client.post("/v1/search/text", json={"query": queries[i % len(queries)], "k": 20})
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


def in_process(base: Path, queries: list[str], count: int) -> dict[str, float]:
    from app.core.config import Settings
    from cli.context import open_service

    service = open_service(Settings(data_dir=base / "data"))
    for query in queries[:10]:
        service.search_text(query, k=20)
    embed, search = [], []
    for i in range(count):
        query = queries[i % len(queries)]
        started = time.perf_counter()
        service.vectors.text_vector(query)
        embed.append(time.perf_counter() - started)
        started = time.perf_counter()
        service.search_text(query, k=20)
        search.append(time.perf_counter() - started)
    return {
        "embed_p50_ms": 1000 * statistics.median(embed),
        "search_p50_ms": 1000 * statistics.median(search),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--limit", type=int, default=None, help="index only the first N photos")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1, help="decoding worker processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="photosearch-bench-") as tmp:
        base = Path(tmp)
        folder, queries = build_folder(base, args.limit)
        indexed = index(base, folder, args.workers)
        http = serve_and_query(base, queries, args.queries)
        local = in_process(base, queries, args.queries)
    print(f"machine: {machine()}")
    print(
        f"indexing: {indexed['photos']:.0f} photos in {indexed['seconds']:.1f} s = "
        f"{indexed['photos_per_s']:.1f} photos/s (scan, hash, decode, embed, SQL, FAISS; "
        f"{args.workers} decode worker(s))"
    )
    print(
        f"text search over HTTP ({args.queries} queries, k=20): p50 {http['p50_ms']:.1f} ms, "
        f"p99 {http['p99_ms']:.1f} ms"
    )
    print(
        f"baseline in-process: search p50 {local['search_p50_ms']:.1f} ms "
        f"(text embedding alone {local['embed_p50_ms']:.1f} ms); "
        f"HTTP/in-process = {http['p50_ms'] / local['search_p50_ms']:.2f}x"
    )


if __name__ == "__main__":
    main()
