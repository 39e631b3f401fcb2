"""What search filters cost: text-query p50/p99 over real HTTP with each filter, against the unfiltered query.

Embedding real photos at these sizes would take days on a CPU, so the library is synthetic: photo
rows with spread metadata (three collections, year/month folders, camera makes and models, dates
over eight years, a few tags) and clustered unit vectors of the default model's dimension are
written through the storage layer, and each collection's FAISS file is built and recorded in
index_builds as indexer/publish.py does. Then the real app is served by uvicorn (auth off, SQLite)
and real text queries are sent (the model embeds them). Each filter has a case that matches many
photos and one that matches few (3 photos, or one day's photos for the dates), counted with
GET /v1/photos; the cases take turns query by query so that drift hits all alike.

    python benchmarks/filters.py [--sizes 10000 100000] [--queries 100]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
from index_and_query import REPO, machine, percentile, start_server, wait_ready

sys.path.insert(0, str(REPO))

QUERIES = [
    "a dog running on the beach",
    "two children playing in the snow",
    "a man riding a bicycle down a street",
    "a birthday cake with candles",
    "mountains at sunset",
    "a black cat sleeping on a sofa",
    "people sitting at a restaurant table",
    "a red car parked by the road",
    "a girl jumping into a swimming pool",
    "a city skyline at night",
    "a boat on a lake",
    "a family picnic in the park",
    "a skateboarder doing a trick",
    "a crowd at a concert",
    "a baby laughing",
    "autumn leaves in a forest",
]
CAMERAS = [  # (make, model, weight)
    ("Canon", "Canon EOS 80D", 20),
    ("Canon", "Canon EOS R6", 15),
    ("NIKON CORPORATION", "NIKON D750", 15),
    ("Apple", "iPhone 12", 20),
    ("Apple", "iPhone 14 Pro", 15),
    ("samsung", "SM-G991B", 10),
    ("FUJIFILM", "X-T3", 5),
]
TAGS = [("dog", 0.10), ("beach", 0.08), ("snow", 0.05), ("people", 0.25)]
FIRST_DAY, YEARS = datetime(2016, 1, 1), 8
RARE = 3  # photos matched by each "few" case


def cases(n: int) -> list[tuple[str, dict[str, object]]]:
    """(filter, extra body fields); the first is the baseline."""
    return [
        ("none", {}),
        ("collections", {"collections": ["work"]}),
        ("collections", {"collections": ["scans"]}),
        ("tags", {"tags": ["dog"]}),
        ("tags (2, both)", {"tags": ["dog", "beach"]}),
        ("tags", {"tags": ["lighthouse"]}),
        ("folders", {"folders": ["2019"]}),
        ("folders", {"folders": ["2019/07"]}),
        ("folders", {"folders": ["misc/scanned"]}),
        ("cameras", {"cameras": ["canon"]}),
        ("cameras", {"cameras": ["pentax k-1"]}),
        ("taken_after/before", {"taken_after": "2021-01-01", "taken_before": "2021-12-31"}),
        ("taken_after/before", {"taken_after": "2020-05-17", "taken_before": "2020-05-17"}),
        ("sort: newest", {"sort": "newest"}),
        ("tags+cameras+dates", {"tags": ["people"], "cameras": ["apple"], "taken_after": "2022-01-01"}),
    ]


def synthesize(base: Path, n: int, seed: int = 0) -> dict[str, int]:
    """Write n photos, their vectors, tags and one index build per collection into base/data."""
    from sqlalchemy import insert

    from app.core.config import Settings
    from app.storage import repository as repo
    from app.storage.tables import Photo, PhotoEmbedding, PhotoTag
    from app.storage.vector_index import build_index, plan_index, write_index_atomic
    from cli.context import open_encoder, open_sessions
    from indexer.publish import index_folder_for

    settings = Settings(data_dir=base / "data")
    sessions = open_sessions(settings)
    encoder = open_encoder(settings)
    key, dim = encoder.key, encoder.dim
    del encoder
    rng = np.random.default_rng(seed)
    ids = np.arange(1, n + 1, dtype=np.int64)
    collection_of = np.where(rng.random(n) < 0.7, "family", "work").astype(object)
    rare = {name: rng.choice(n, RARE, replace=False) for name in ("scans", "tag", "folder", "camera")}
    collection_of[rare["scans"]] = "scans"
    days = rng.integers(0, YEARS * 365, n)
    seconds = rng.integers(6 * 3600, 22 * 3600, n)
    undated = rng.random(n) < 0.03
    weights = np.array([w for *_, w in CAMERAS], dtype=float)
    camera_of = rng.choice(len(CAMERAS), n, p=weights / weights.sum())
    no_camera = rng.random(n) < 0.05
    # clustered vectors: 64 themes, each photo near one, so that queries find a real top
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, n)] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    offsets = (0.02 * rng.standard_normal(n)).astype(float)
    photos, embeddings, tags = [], [], []
    for i in range(n):
        taken = None if undated[i] else FIRST_DAY + timedelta(days=int(days[i]), seconds=int(seconds[i]))
        folder = f"{taken.year}/{taken.month:02d}" if taken else "unsorted"
        make, model, _ = CAMERAS[camera_of[i]]
        if no_camera[i]:
            make = model = None
        if i in rare["folder"]:
            folder = "misc/scanned"
        if i in rare["camera"]:
            make, model = "PENTAX", "K-1"
        sha = hashlib.sha256(str(i).encode()).hexdigest()
        photos.append(
            {
                "id": int(ids[i]),
                "collection_id": 0,  # set below
                "path": f"/photos/{collection_of[i]}/{folder}/IMG_{i:06d}.jpg",
                "folder": folder,
                "size": 3_000_000,
                "mtime_ns": 1_700_000_000_000_000_000,
                "sha256": sha,
                "status": "ok",
                "width": 4032,
                "height": 3024,
                "format": "JPEG",
                "taken_at": taken,
                "camera_make": make,
                "camera_model": model,
            }
        )
        embeddings.append(
            {
                "photo_id": int(ids[i]),
                "model_key": key,
                "vector": vectors[i].tobytes(),
                "hub_offset": offsets[i],
            }
        )
        chosen = [tag for tag, share in TAGS if rng.random() < share]
        if i in rare["tag"]:
            chosen.append("lighthouse")
        tags += [
            {
                "photo_id": int(ids[i]),
                "tag": t,
                "score": 0.9,
                "source": f"zeroshot:bench@{key}",
                "photo_sha256": sha,
            }
            for t in chosen
        ]
    with sessions() as session:
        collection_ids = {
            name: repo.get_or_create_collection(session, name=name, root=Path(f"/photos/{name}")).id
            for name in ("family", "work", "scans")
        }
        for row, name in zip(photos, collection_of, strict=True):
            row["collection_id"] = collection_ids[name]
        for start in range(0, n, 5000):
            session.execute(insert(Photo), photos[start : start + 5000])
            session.execute(insert(PhotoEmbedding), embeddings[start : start + 5000])
        for start in range(0, len(tags), 5000):
            session.execute(insert(PhotoTag), tags[start : start + 5000])
        session.commit()
        cfg = settings.indexer
        for name, collection_id in collection_ids.items():
            mask = collection_of == name
            plan = plan_index(int(mask.sum()), dim, cfg.flat_max_vectors, cfg.hnsw_max_vectors)
            path = index_folder_for(settings.index_dir, name, key) / f"photos-{time.time_ns()}.faiss"
            write_index_atomic(build_index(vectors[mask], ids[mask], plan), path)
            signature = hashlib.sha256(ids[mask].tobytes() + vectors[mask].tobytes()).hexdigest()
            repo.record_index_build(
                session,
                collection_id=collection_id,
                model_key=key,
                kind="photos",
                index_type=plan.kind,
                path=path,
                vectors=int(mask.sum()),
                dim=dim,
                signature=signature,
            )
        session.commit()
    return {name: int((collection_of == name).sum()) for name in collection_ids}


def matching(client: httpx.Client, body: dict[str, object]) -> int:
    """Photos the filters allow, as GET /v1/photos counts them."""
    params = {key: value for key, value in body.items() if key != "sort"}
    response = client.get("/v1/photos", params={**params, "k": 1})  # type: ignore[arg-type]
    response.raise_for_status()
    return int(response.json()["total"])


def measure(
    client: httpx.Client, bodies: list[dict[str, object]], count: int
) -> tuple[list[list[float]], list[int]]:
    """Latencies of each body, the bodies taking turns (rotating who goes first); hits of the last query."""
    latencies: list[list[float]] = [[] for _ in bodies]
    hits = [0] * len(bodies)
    for i in range(-5, count):  # the first 5 rounds: warm-up, not counted
        query = QUERIES[i % len(QUERIES)]
        shift = i % len(bodies)
        for j in [*range(shift, len(bodies)), *range(shift)]:
            started = time.perf_counter()
            response = client.post("/v1/search/text", json={"query": query, "k": 20, **bodies[j]})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            hits[j] = len(response.json()["hits"])
            if i >= 0:
                latencies[j].append(elapsed)
    return latencies, hits


def run_size(n: int, count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        sizes = synthesize(base, n)
        built = time.perf_counter() - started
        server, url = start_server(base / "data", quiet=True)
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                wait_ready(client)
                table = cases(n)
                matches = [matching(client, body) for _, body in table]
                latencies, hits = measure(client, [body for _, body in table], count)
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(
        f"\n{n:,} photos (collections {sizes}; synthesized and indexed in {built:.0f} s), "
        f"{count} queries per row, k=20"
    )
    print("| filter | body | matches | hits | p50 ms | p99 ms | p50 / unfiltered | p99 / unfiltered |")
    print("|---|---|---|---|---|---|---|---|")
    base50, base99 = percentile(latencies[0], 50), percentile(latencies[0], 99)
    for (name, body), found, values, got in zip(table, matches, latencies, hits, strict=True):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        shown = ", ".join(f"{k}: {v}" for k, v in body.items()) or "—"
        print(
            f"| {name} | {shown} | {found:,} | {got} | {1000 * p50:.1f} | {1000 * p99:.1f} "
            f"| {p50 / base50:.2f}× | {p99 / base99:.2f}× |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[10_000, 100_000], help="photos in the library"
    )
    parser.add_argument("--queries", type=int, default=100, help="queries per filter case")
    args = parser.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    for n in args.sizes:
        run_size(n, args.queries)


if __name__ == "__main__":
    main()
