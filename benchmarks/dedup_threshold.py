"""Where near-identical photos end and different photos begin, for the duplicate collapsing in search.

1. Threshold. From N real photos (Flickr8k val by default, read in place), writes variants into a
   temporary folder: a byte copy, a mirrored copy, a JPEG re-encoded at quality 50, a copy
   downscaled to 50%, and a "burst" copy (the frame shifted by 3–5% and the brightness moved by
   5–10% up or down). Every file is embedded by the default model exactly as the indexer embeds it
   (models.loading.iterate_photo_batches → Encoder.encode_image_batch). Prints, per kind of variant,
   the cosine between original and variant (min, 5th percentile, median), and for every photo of the
   split its nearest *different* photo (99th, 99.9th percentile, max: the hard negatives); then the
   threshold chosen by the rule below and the share of each variant kind it catches. Writes a
   histogram PNG.
2. Cost. At --latency-photos synthetic photos (benchmarks/filters.py's library), the p50 of an
   in-process text search (SearchService.search_text, k=20) with dedup on against dedup off, the two
   taking turns query by query in one process.

    python benchmarks/dedup_threshold.py [--data ../shared/data/flickr8k] [--n 200] [--latency-photos 10000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from index_and_query import REPO, machine, percentile
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(REPO))

MARGIN = 0.02  # the threshold sits this far above the closest pair of different photos seen
Variant = Callable[[Path, Path, np.random.Generator], None]


def byte_copy(source: Path, target: Path, _rng: np.random.Generator) -> None:
    shutil.copyfile(source, target)


def mirrored(source: Path, target: Path, _rng: np.random.Generator) -> None:
    with Image.open(source) as image:
        ImageOps.mirror(image.convert("RGB")).save(target, "JPEG", quality=92)


def jpeg_q85(source: Path, target: Path, _rng: np.random.Generator) -> None:
    with Image.open(source) as image:
        image.convert("RGB").save(target, "JPEG", quality=85)


def jpeg_q50(source: Path, target: Path, _rng: np.random.Generator) -> None:
    with Image.open(source) as image:
        image.convert("RGB").save(target, "JPEG", quality=50)


def half_size(source: Path, target: Path, _rng: np.random.Generator) -> None:
    with Image.open(source) as image:
        small = image.convert("RGB").resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        small.save(target, "JPEG", quality=90)


def burst(source: Path, target: Path, rng: np.random.Generator) -> None:
    """The next frame of a burst: the framing moved by 3–5% of each side, the exposure by 5–10%."""
    with Image.open(source) as image:
        rgb = image.convert("RGB")
    shift = rng.uniform(0.03, 0.05)
    dx, dy = round(shift * rgb.width), round(shift * rgb.height)
    left, top = (dx, dy) if rng.random() < 0.5 else (0, 0)  # the window moves right/down or stays
    if rng.random() < 0.5:
        left = dx - left
    framed = rgb.crop((left, top, left + rgb.width - dx, top + rgb.height - dy))
    factor = 1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.10)
    ImageEnhance.Brightness(framed).enhance(factor).save(target, "JPEG", quality=92)


VARIANTS: dict[str, Variant] = {
    "byte copy": byte_copy,
    "mirrored": mirrored,
    "JPEG q=85": jpeg_q85,
    "JPEG q=50": jpeg_q50,
    "downscaled 50%": half_size,
    "burst (shift 3-5%, brightness ±5-10%)": burst,
}


def split_photos(data: Path, split: str) -> list[Path]:
    with open(data / "captions.jsonl", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    return [data / row["image"] for row in rows if row["split"] == split]


def embed(encoder: object, paths: list[Path]) -> np.ndarray:
    """(n, dim) unit vectors, as the indexer computes them (indexer/embedding.py)."""
    from models.images import DEFAULT_MAX_PIXELS
    from models.loading import iterate_photo_batches

    chunks = []
    for batch in iterate_photo_batches(
        paths,
        encoder.preprocess,  # type: ignore[attr-defined]
        batch_size=32,
        workers=1,
        max_pixels=DEFAULT_MAX_PIXELS,
    ):
        assert not batch.failures, batch.failures
        chunks.append(encoder.encode_image_batch(batch.pixels))  # type: ignore[attr-defined]
    return np.concatenate(chunks)


def split_vectors(encoder: object, photos: list[Path], cache: Path | None) -> np.ndarray:
    """The split's vectors, kept in `cache` (an .npy file) between runs: they take the longest."""
    if cache is not None and cache.exists():
        stored = np.load(cache)
        if len(stored) == len(photos):
            return stored
    vectors = embed(encoder, photos)
    if cache is not None:
        np.save(cache, vectors)
    return vectors


def nearest_different(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each photo's highest cosine to any other photo, and which photo that is."""
    similarity = vectors @ vectors.T  # (n, n)
    np.fill_diagonal(similarity, -np.inf)
    return similarity.max(axis=1), similarity.argmax(axis=1)


def summary(values: np.ndarray) -> str:
    low, fifth, median = (float(np.percentile(values, q)) for q in (0, 5, 50))
    return f"min {low:.4f}  5th pct {fifth:.4f}  median {median:.4f}"


def choose_threshold(nearest: np.ndarray) -> float:
    """Rule: above the closest pair of different photos seen, with MARGIN to spare, rounded up to 0.01."""
    return float(np.ceil((float(nearest.max()) + MARGIN) * 100) / 100)


def save_histogram(
    path: Path, nearest: np.ndarray, variants: dict[str, np.ndarray], threshold: float
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 5))
    bins = np.linspace(min(0.4, float(nearest.min())), 1.0, 121)
    axes.hist(nearest, bins=bins, alpha=0.6, label="nearest different photo", color="grey")
    for name, values in variants.items():
        if name != "byte copy":  # a byte copy is 1.0 exactly: one bar at the edge
            axes.hist(values, bins=bins, alpha=0.55, label=name, histtype="stepfilled")
    axes.axvline(threshold, color="red", linestyle="--", label=f"threshold {threshold:.2f}")
    axes.set_xlabel("cosine of photo vectors (joint-default, as indexed)")
    axes.set_ylabel("photos")
    axes.set_title("Duplicates vs the nearest different photo")
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def measure_threshold(data: Path, n: int, seed: int, png: Path, cache: Path | None) -> float:
    from app.core.config import Settings
    from cli.context import open_encoder

    encoder = open_encoder(Settings(device="cpu"))
    photos = split_photos(data, "val")
    rng = np.random.default_rng(seed)
    chosen = [photos[i] for i in sorted(rng.choice(len(photos), min(n, len(photos)), replace=False))]
    started = time.perf_counter()
    vectors = split_vectors(encoder, photos, cache)  # (len(photos), dim)
    print(f"{len(photos)} val photos embedded ({time.perf_counter() - started:.0f} s)", flush=True)
    index_of = {path: i for i, path in enumerate(photos)}
    originals = vectors[[index_of[p] for p in chosen]]
    cosines: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, (name, make) in enumerate(VARIANTS.items()):
            paths = [Path(tmp) / f"{kind}-{p.stem}.jpg" for p in chosen]
            for source, target in zip(chosen, paths, strict=True):
                make(source, target, rng)
            cosines[name] = np.sum(embed(encoder, paths) * originals, axis=1)
            print(f"{name}: embedded ({time.perf_counter() - started:.0f} s)", flush=True)
    nearest, which = nearest_different(vectors)
    print(
        f"embedded {len(photos)} photos and {len(chosen)} × {len(VARIANTS)} variants in "
        f"{time.perf_counter() - started:.0f} s\n"
    )
    print(f"original vs variant, {len(chosen)} photos of {data.name} val:")
    for name, values in cosines.items():
        print(f"  {name:40s} {summary(values)}")
    top = {q: float(np.percentile(nearest, q)) for q in (50, 99, 99.9)}
    print(
        f"\nnearest different photo, all {len(photos)} val photos: median {top[50]:.4f}  "
        f"99th pct {top[99]:.4f}  99.9th pct {top[99.9]:.4f}  max {nearest.max():.4f}"
    )
    pairs = dict.fromkeys(tuple(sorted((int(i), int(which[i])))) for i in np.argsort(-nearest))
    for a, b in list(pairs)[:5]:  # the closest pairs of different photos, each once
        print(f"  {float(vectors[a] @ vectors[b]):.4f}  {photos[a].name}  ~  {photos[b].name}")
    threshold = choose_threshold(nearest)
    print(
        f"\nthreshold {threshold:.2f}: the closest pair of different photos ({nearest.max():.4f}) "
        f"+ {MARGIN} margin, rounded up to 0.01"
    )
    for name, values in cosines.items():
        print(f"  catches {name:40s} {float(np.mean(values >= threshold)):7.1%}")
    print(f"  merges different photos: {float(np.mean(nearest >= threshold)):.1%} of {len(photos)}")
    save_histogram(png, nearest, cosines, threshold)
    print(f"\nhistogram: {png}")
    return threshold


def measure_cost(n: int, count: int, threshold: float) -> None:
    """p50/p99 of SearchService.search_text (k=20) with dedup on and off, taking turns query by query
    (who goes first alternates) in one process, over benchmarks/filters.py's synthetic library."""
    from filters import QUERIES, synthesize

    from app.core.config import ApiSettings, Settings
    from cli.context import open_service

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        sizes = synthesize(Path(tmp), n)
        built = time.perf_counter() - started
        service = open_service(
            Settings(data_dir=Path(tmp) / "data", device="cpu", api=ApiSettings(dedup_threshold=threshold))
        )
        latencies: dict[bool, list[float]] = {True: [], False: []}
        for i in range(-5, count):  # the first 5 rounds: warm-up, not counted
            query = QUERIES[i % len(QUERIES)]
            for dedup in (True, False) if i % 2 else (False, True):
                begun = time.perf_counter()
                service.search_text(query, k=20, dedup=dedup)
                if i >= 0:
                    latencies[dedup].append(time.perf_counter() - begun)
    print(f"\ncost: {n:,} synthetic photos {sizes} (built in {built:.0f} s), {count} text queries each, k=20")
    off50, off99 = percentile(latencies[False], 50), percentile(latencies[False], 99)
    for dedup, values in ((False, latencies[False]), (True, latencies[True])):
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(
            f"  dedup {'on ' if dedup else 'off'}  p50 {1000 * p50:6.1f} ms ({p50 / off50:.2f}×)  "
            f"p99 {1000 * p99:6.1f} ms ({p99 / off99:.2f}×)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "flickr8k")
    parser.add_argument("--n", type=int, default=200, help="photos to make variants of")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", type=Path, default=Path(__file__).with_name("dedup_threshold.png"))
    parser.add_argument("--cache", type=Path, default=None, help=".npy file keeping the split's vectors")
    parser.add_argument("--threshold", type=float, default=None, help="skip part 1, use this threshold")
    parser.add_argument("--latency-photos", type=int, default=10_000, help="0: skip the cost part")
    parser.add_argument("--queries", type=int, default=100)
    args = parser.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n", flush=True)
    threshold = args.threshold or measure_threshold(args.data, args.n, args.seed, args.png, args.cache)
    if args.latency_photos:
        measure_cost(args.latency_photos, args.queries, threshold)


if __name__ == "__main__":
    main()
