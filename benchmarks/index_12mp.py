"""Indexing speed on camera-sized photos: 12 MP JPEGs end to end, the default pipeline against a
baseline pipeline run in the same process on the same files, plus in-process text-query latency.

The files: each of --count shared Flickr8k val photos enlarged to 4000×3000 (bicubic), with mild
Gaussian noise (σ=3, so the JPEG carries detail beyond the smooth enlargement) and EXIF camera
make/model/date, saved at JPEG quality 92: about 1.8 MB each. Made once into --folder and reused.
A camera's own 12 MP JPEGs are often 3–5 MB; decoding at reduced scale costs about in proportion to
the compressed bytes (the entropy decoding of the whole file stays), so they index more slowly.

Each pipeline indexes the folder into a fresh SQLite data dir, end to end: scan + SHA-256 + decode +
embed + SQL + FAISS. The files are read once beforehand so both runs find them in the page cache.

    python benchmarks/index_12mp.py [--count 200] [--folder /tmp/photosearch-12mp]
        [--baseline "workers=1,reduced_decode=false,runtime=torch,preset=best"] [--pipeline "preset=fast"]
        [--noise 3]

A pipeline is comma-separated settings: workers, reduced_decode (true/false), runtime (auto, torch,
onnx), preset (fast, balanced, best), quantize (auto, none, image), model (a registered name; default
joint-default); what it leaves out is the default.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.index_and_query import SHARED, machine  # noqa: E402

SIZE = (4000, 3000)
QUERIES = [
    "a dog running on the beach",
    "two children playing in a fountain",
    "a man riding a bicycle down a hill",
    "a woman in a red jacket on a snowy mountain",
    "a group of people at a concert",
    "a black and white dog jumping over a log",
    "a boy in a swimming pool",
    "people walking on a busy city street",
]


def camera_file(source: Path, target: Path, seed: int, noise: float = 3.0) -> None:
    rng = np.random.default_rng(seed)
    with Image.open(source) as small:
        big = np.asarray(small.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC), dtype=np.float32)
    big = np.clip(big + rng.normal(0.0, noise, big.shape), 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0132] = "Benchcam", "B-12", f"2024:05:{1 + seed % 28:02d} 10:00:00"
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    target.write_bytes(buffer.getvalue())


def make_files(folder: Path, count: int, noise: float = 3.0) -> list[Path]:
    from rich.progress import track

    folder.mkdir(parents=True, exist_ok=True)
    with open(SHARED / "captions.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if '"val"' in line][:count]
    paths = [folder / f"cam_{i:05d}.jpg" for i in range(len(rows))]
    todo = [(i, row) for i, row in enumerate(rows) if not paths[i].is_file()]
    for i, row in track(todo, description="making 12 MP JPEGs (once)", disable=not todo):
        camera_file(SHARED / row["image"], paths[i], i, noise)
    return paths


def parse_pipeline(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(",") if part.strip())


def encoder_for(pipeline: dict[str, str]):  # noqa: ANN201
    from models.inference import ServingOptions, load_encoder

    # as `photosearch index` opens it: ONNX Runtime's idle threads leave the cores to the decoders
    runtime, preset = pipeline.get("runtime", "auto"), pipeline.get("preset") or None
    quantize = pipeline.get("quantize", "auto")
    options = ServingOptions(runtime, preset, quantize, spin=False)  # type: ignore[arg-type]
    return load_encoder(pipeline.get("model", "joint-default"), device="cpu", options=options)


def index_once(folder: Path, pipeline: dict[str, str], encoder) -> dict[str, float]:  # noqa: ANN001
    from app.core.config import Settings
    from app.storage.db import make_engine, migrate, session_factory
    from indexer.pipeline import index_folder

    base = Path(tempfile.mkdtemp(prefix="photosearch-bench-"))
    settings = Settings(data_dir=base / "data", device="cpu")
    indexer = settings.indexer.model_copy(
        update={
            "workers": int(pipeline["workers"]) if "workers" in pipeline else None,
            "reduced_decode": pipeline.get("reduced_decode", "true").lower() == "true",
        }
    )
    engine = make_engine(settings.db_url)
    migrate(engine)
    sessions = session_factory(engine)
    started = time.perf_counter()
    report = index_folder(
        root=folder,
        collection="bench",
        encoder=encoder,
        sessions=sessions,
        index_dir=settings.index_dir,
        settings=indexer,
        show_progress=True,
    )
    seconds = time.perf_counter() - started
    latency = query_latency(settings, encoder, sessions)
    engine.dispose()
    return {
        "photos": report.embedded,
        "seconds": seconds,
        "photos_per_s": report.embedded / seconds,
        **latency,
    }


def query_latency(settings, encoder, sessions) -> dict[str, float]:  # noqa: ANN001
    """Median ms of embedding one text, and of a whole text search in-process (embed + FAISS + SQL)."""
    from app.services.search import SearchService

    service = SearchService(settings, encoder, sessions)
    for query in QUERIES:  # warm-up
        service.search_text(query, k=20)
    embed, search = [], []
    for round_ in range(25):
        for query in QUERIES:
            text = f"{query} {round_}"
            started = time.perf_counter()
            encoder.encode_texts([text])
            embed.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            service.search_text(text, k=20)
            search.append((time.perf_counter() - started) * 1000)
    return {"embed_text_ms_p50": statistics.median(embed), "search_text_ms_p50": statistics.median(search)}


def decode_rate(paths: list[Path], size: int) -> dict[str, float]:
    """Photos/s one core decodes and preprocesses, at reduced scale and at full size (no model)."""
    from models.loading import iterate_photo_batches
    from models.preprocess import PreprocessConfig

    rates = {}
    for label, draft in (("reduced", True), ("full", False)):
        started = time.perf_counter()
        for _ in iterate_photo_batches(paths, PreprocessConfig(image_size=size), workers=0, draft=draft):
            pass
        rates[f"decode_{label}_per_core"] = len(paths) / (time.perf_counter() - started)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument(
        "--noise", type=float, default=3.0, help="σ of the added noise: 3 gives ~1.8 MB files, 8 ~3.8 MB"
    )
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "photosearch-12mp")
    parser.add_argument("--baseline", default="workers=1,reduced_decode=false,runtime=torch,preset=best")
    parser.add_argument(
        "--pipeline", default="", help="the measured pipeline (default: the settings' defaults)"
    )
    args = parser.parse_args()
    paths = make_files(args.folder, args.count, args.noise)
    megabytes = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
    for path in paths:  # both runs find the files in the page cache
        path.read_bytes()
    print(f"machine: {machine()}")
    print(
        f"files: {len(paths)} JPEGs {SIZE[0]}x{SIZE[1]}, {megabytes:.1f} MB each on average, in {args.folder}"
    )
    print(f"decoding alone, one core, to 320 px: {json.dumps(decode_rate(paths[:50], 320))} photos/s")
    results = {}
    for label, text in (("baseline", args.baseline), ("default", args.pipeline)):
        pipeline = parse_pipeline(text)
        encoder = encoder_for(pipeline)
        results[label] = index_once(args.folder, pipeline, encoder)
        print(f"{label:9s} [{text or 'settings defaults'}] key={encoder.key}: {json.dumps(results[label])}")
    base, new = results["baseline"], results["default"]
    for name, unit in (
        ("photos_per_s", "photos/s"),
        ("embed_text_ms_p50", "ms"),
        ("search_text_ms_p50", "ms"),
    ):
        ratio = new[name] / base[name] if unit == "photos/s" else base[name] / new[name]
        print(
            f"{name}: default {new[name]:.1f} {unit} vs baseline {base[name]:.1f} {unit}: {ratio:.1f}x better"
        )


if __name__ == "__main__":
    main()
