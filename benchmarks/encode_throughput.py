"""Encoding throughput of a model on this machine: images/s (JPEG decode + preprocess included) and texts/s.

    python benchmarks/encode_throughput.py --model clip-vit-h-14                 # real weights
    python benchmarks/encode_throughput.py --model clip-vit-b-32 --random-weights # speed only
    python benchmarks/encode_throughput.py --model tiny --random-weights          # the test architecture

Images are read from JPEG files through models.loading.iterate_photo_batches (the indexer's own
loader, with worker processes), so the figure is what `photosearch index` can reach; the model-only
rate (tensors already decoded) is printed beside it. One warm-up pass, then the median of --runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.clip.encoder import ClipEncoder, random_clip_encoder  # noqa: E402
from models.clip.tiny import tiny_clip_config  # noqa: E402
from models.encoder import Encoder  # noqa: E402
from models.loading import iterate_photo_batches  # noqa: E402
from models.registry import create_encoder, load_model_config  # noqa: E402
from models.runtime import resolve_device  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="clip-vit-h-14", help="name, checkpoint, local-dir:, or 'tiny'")
    parser.add_argument("--checkpoint", default=None, help="weights location for --model")
    parser.add_argument("--random-weights", action="store_true", help="architecture only: speed, not quality")
    parser.add_argument("--images", type=Path, default=SHARED / "images", help="folder of JPEG files")
    parser.add_argument("--captions", type=Path, default=SHARED / "captions.jsonl", help="texts to encode")
    parser.add_argument("--limit", type=int, default=256, help="images per run")
    parser.add_argument("--texts", type=int, default=1024, help="texts per run")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the encoder's suggestion")
    parser.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--device", default="auto")
    return parser.parse_args()


def build_encoder(args: argparse.Namespace, device: torch.device) -> Encoder:
    if args.model == "tiny":
        return random_clip_encoder(tiny_clip_config(), device)
    if args.random_weights:
        return random_clip_encoder(load_model_config(args.model), device)
    return create_encoder(args.model, args.checkpoint, device)


def image_run(encoder: Encoder, paths: list[Path], batch_size: int, workers: int) -> tuple[float, float]:
    """→ (seconds end to end, seconds inside the model) for every photo in `paths`."""
    started, in_model, done = time.perf_counter(), 0.0, 0
    for batch in iterate_photo_batches(paths, encoder.preprocess, batch_size=batch_size, workers=workers):
        tick = time.perf_counter()
        encoder.encode_image_batch(batch.pixels)  # returns numpy: the device has finished
        in_model += time.perf_counter() - tick
        done += len(batch.indices)
    if done != len(paths):
        raise RuntimeError(f"only {done} of {len(paths)} photos decoded")
    return time.perf_counter() - started, in_model


def text_run(encoder: Encoder, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    encoder.encode_texts(texts, batch_size=batch_size)
    return time.perf_counter() - started


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    name = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    return f"{name}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, no GPU"


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    encoder = build_encoder(args, device)
    batch = args.batch_size or (encoder.suggested_batch_size() if isinstance(encoder, ClipEncoder) else 32)
    precision = encoder.precision_label if isinstance(encoder, ClipEncoder) else "fp32"
    paths = sorted(args.images.glob("*.jpg"))[: args.limit]
    texts = [c for line in args.captions.read_text().splitlines() for c in json.loads(line)["captions"]]
    texts = texts[: args.texts]

    image_run(encoder, paths[:batch], batch, args.workers)  # warm-up: workers, kernels, caches
    text_run(encoder, texts[:batch], batch)
    image_times = [image_run(encoder, paths, batch, args.workers) for _ in range(args.runs)]
    text_times = [text_run(encoder, texts, batch) for _ in range(args.runs)]

    images_per_s = [len(paths) / total for total, _ in image_times]
    model_per_s = [len(paths) / inside for _, inside in image_times]
    texts_per_s = [len(texts) / t for t in text_times]
    weights = "random weights" if args.random_weights or args.model == "tiny" else "trained weights"
    print(f"model      {encoder.key} ({weights})")
    print(f"machine    {machine(device)}")
    print(f"device     {device}  precision {precision}  batch size {batch}  decode workers {args.workers}")
    print(f"images     {len(paths)} JPEG files from {args.images}, {args.runs} runs after a warm-up")
    print(
        f"images/s   {statistics.median(images_per_s):8.1f}  (end to end, median; runs {_fmt(images_per_s)})"
    )
    print(f"images/s   {statistics.median(model_per_s):8.1f}  (model only, median; runs {_fmt(model_per_s)})")
    text_rate = statistics.median(texts_per_s)
    print(f"texts/s    {text_rate:8.1f}  ({len(texts)} captions, median; runs {_fmt(texts_per_s)})")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


if __name__ == "__main__":
    main()
