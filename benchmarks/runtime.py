"""PyTorch against ONNX Runtime (fp32 and int8) on the CPU, for each test-time preset: text query latency,
photo embedding throughput and, with --recall, Flickr8k val retrieval as served (query bank on).

    python benchmarks/runtime.py [--model joint-default] [--photos 32] [--rounds 5] [--recall] [--out FILE]

Every figure is taken in this one process against today's default (PyTorch, preset best), so the ratios
hold on a busy machine even where the absolute figures do not. Latency: one query at a time, median
over rounds × the query list. Throughput: preprocessed pixels in memory (decoding excluded), batches of
32, the median over rounds. Recall: the project's evaluate code (models/training/evaluate.py) over
the whole val split (1,000 photos, 5,000 captions).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "flickr8k"

QUERIES = [
    "a dog running on the beach",
    "two children playing football in a park",
    "a man in a red jacket climbs a rock wall",
    "people sitting at a table in a restaurant",
    "a black and white cat asleep on a sofa",
    "snowy mountains at sunset",
    "a girl with a pink umbrella in the rain",
    "a cyclist on a city street",
]
# (label, runtime, quantize): today's default first, the baseline of every ratio
# onnx-int8image: static int8 image tower (calibrated ranges beside the checkpoint), fp32 text;
# onnx-int8: that image tower and the text tower's matrix products in dynamic int8
RUNTIMES = [
    ("torch", "torch", "none"),
    ("onnx", "onnx", "none"),
    ("onnx-int8image", "onnx", "image"),
    ("onnx-int8", "onnx", "all"),
]


def median_ms(run: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def open_encoders(model: str, cache: Path) -> dict[str, object]:
    from models.inference import ServingOptions, load_encoder

    return {
        label: load_encoder(model, device="cpu", options=ServingOptions(runtime, None, quantize, cache))  # type: ignore[arg-type]
        for label, runtime, quantize in RUNTIMES
    }


def query_p50(encoder: object, rounds: int, queries: list[str] = QUERIES) -> float:
    """Median ms of one text query's embedding, one query at a time, rounds × queries, after a warm-up."""
    encode = encoder.encode_texts  # type: ignore[attr-defined]
    for query in queries:  # warm-up: first calls allocate
        encode([query])
    times = []
    for _ in range(rounds):
        for query in queries:
            started = time.perf_counter()
            encode([query])
            times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def text_latency(encoders: dict, rounds: int) -> list[str]:
    rows, base = [], None
    for label, encoder in encoders.items():
        p50 = query_p50(encoder, rounds)
        base = base or p50
        rows.append(f"| {label} | {p50:.1f} | {base / p50:.2f}× |")
    return ["| text runtime | query p50 (ms) | speed vs torch |", "|---|---|---|", *rows]


def photo_pixels(count: int) -> list:
    from PIL import Image

    from models.training.data import load_captioned_photos

    photos = load_captioned_photos(SHARED, "val")[:count]
    return [Image.open(p.path).convert("RGB") for p in photos]


def image_throughput(encoders: dict, images: list, rounds: int) -> list[str]:
    import torch

    rows, base = [], None
    for preset in ("best", "balanced", "fast"):
        for label, encoder in encoders.items():
            encoder.apply_preset(preset)
            pixels = torch.stack([encoder.preprocess(img) for img in images])
            encoder.encode_image_batch(pixels[:4])  # warm-up
            ms = median_ms(
                lambda e=encoder, p=pixels: [
                    e.encode_image_batch(p[i : i + 32]) for i in range(0, len(p), 32)
                ],
                rounds,
            )
            rate = len(images) / (ms / 1000)
            base = base or rate
            rows.append(f"| {preset} | {label} | {rate:.1f} | {rate / base:.2f}× |")
        encoder.apply_preset(None)
    return ["| preset | image runtime | photos/s | vs torch best |", "|---|---|---|---|", *rows]


# (preset, image runtime, text runtime) rows of the recall table: each preset in fp32 and with the
# int8 image tower, then int8 text (dynamic) at the fast preset, read against the rows above it
RECALL_ROWS = [
    ("best", "onnx", "onnx"),
    ("best", "onnx-int8image", "onnx"),
    ("balanced", "onnx", "onnx"),
    ("balanced", "onnx-int8image", "onnx"),
    ("fast", "onnx", "onnx"),
    ("fast", "onnx-int8image", "onnx"),
    ("fast", "onnx-int8", "onnx-int8"),
]


def recall(encoders: dict, presets: list[str]) -> list[str]:
    from models.training.data import load_captioned_photos
    from models.training.evaluate import encode_photo_files, retrieval_report

    photos = load_captioned_photos(SHARED, "val")
    owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
    texts = [c for p in photos for c in p.captions]
    text_vectors = {label: encoders[label].encode_texts(texts) for label in ("onnx", "onnx-int8")}
    rows, embedded = [], {}
    for preset, image_label, text_label in [row for row in RECALL_ROWS if row[0] in presets]:
        encoder = encoders[image_label]
        if (preset, image_label) not in embedded:
            encoder.apply_preset(preset)
            started = time.perf_counter()
            images = encode_photo_files(encoder, [p.path for p in photos], batch_size=32)
            embedded[preset, image_label] = images, len(photos) / (time.perf_counter() - started)
            encoder.apply_preset(None)
        images, rate = embedded[preset, image_label]
        captions, bank = text_vectors[text_label], encoder.query_bank
        offsets = {}
        if bank is not None:
            offsets = {
                "image_offsets": bank.photo_offsets(images),
                "text_offsets": bank.caption_offsets(captions),
            }
        r = retrieval_report(images, captions, owners, **offsets)
        rows.append(
            f"| {preset} | {image_label} | {text_label} | {r.t2i_r1:.1f} | {r.t2i_r5:.1f} | {r.t2i_r10:.1f} "
            f"| {r.i2t_r1:.1f} | {r.i2t_r5:.1f} | {r.i2t_r10:.1f} | {rate:.1f} |"
        )
        print(rows[-1], flush=True)
    head = (
        "| preset | image runtime | text runtime | T→I R@1 | R@5 | R@10 | I→T R@1 | R@5 | R@10 | photos/s |"
    )
    return [head, "|---|---|---|---|---|---|---|---|---|---|", *rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="joint-default")
    parser.add_argument("--photos", type=int, default=32, help="photos per throughput round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--recall", action="store_true", help="also Flickr8k val R@1/5/10 (slow)")
    parser.add_argument("--recall-presets", nargs="+", default=["best", "balanced", "fast"])
    parser.add_argument("--recall-only", action="store_true", help="skip latency and throughput")
    parser.add_argument("--out", type=Path, help="also write the tables here (markdown)")
    args = parser.parse_args()

    from models.runtime import tune_allocator

    tune_allocator()
    with tempfile.TemporaryDirectory() as cache:
        encoders = open_encoders(args.model, Path(cache))
        key = next(iter(encoders.values())).key  # type: ignore[attr-defined]
        lines = [
            f"`{key}`; {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}; "
            f"load average {os.getloadavg()[0]:.1f} at start",
        ]
        if not args.recall_only:
            lines += ["", *text_latency(encoders, args.rounds), ""]
            lines += image_throughput(encoders, photo_pixels(args.photos), args.rounds)
        print("\n".join(lines), flush=True)
        if args.recall or args.recall_only:
            lines += ["", *recall(encoders, args.recall_presets)]
    lines[0] += f", {os.getloadavg()[0]:.1f} at the end"
    table = "\n".join(lines)
    print("\n" + table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
