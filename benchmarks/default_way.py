"""The default way a joint checkpoint is served, by the rule: the fastest preset and precision within
1 R@1 point of best fp32, both ways, on each val set. Measures every preset (fast, balanced, best) in
fp32 (PyTorch), with the int8 image tower (ONNX Runtime, the checkpoint's int8 calibration) and with the
7-bit int8 weights a CPU without VNNI uses, each as served (with the checkpoint's query bank); prints the
table, the choice and the `photosearch calibrate` command that writes it into the checkpoint.

    python benchmarks/default_way.py --model CHECKPOINT --data ../shared/data/flickr8k \
        --data ../shared/data/cc3m [--out benchmarks/default-way]

The captions of a val set are embedded once (PyTorch fp32: quantize=image leaves the text tower in fp32)
and ranked against each way's photo vectors; seconds are the photos' embedding (decode included) of all
the sets on this machine. Needs `photosearch calibrate-int8` run for the checkpoint first.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
PRESETS = ("fast", "balanced", "best")
PRECISIONS = ("fp32", "int8", "int8 7-bit")
MARGIN = 1.0  # R@1 points under best fp32 the rule allows


@dataclass
class Way:
    preset: str
    precision: str
    seconds: float
    recalls: dict[str, tuple[float, float, float]]  # set → (T→I R@1, I→T R@1, R@sum)

    @property
    def name(self) -> str:
        return f"{self.preset}, {self.precision}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="joint-default", help="registered name or checkpoint path")
    parser.add_argument("--data", type=Path, action="append", help="captioned data set (several allowed)")
    parser.add_argument("--out", type=Path, default=None, help="write the table as OUT.md too")
    args = parser.parse_args()
    folders = args.data or [SHARED / "flickr8k", SHARED / "cc3m"]

    from models.inference import ServingOptions, load_encoder
    from models.training.data import load_captioned_photos
    from models.training.evaluate import encode_photo_files, served_report

    base = load_encoder(args.model, options=ServingOptions(runtime="torch", quantize="none"))
    sets = []
    for folder in folders:
        photos = load_captioned_photos(folder, "val")
        texts = [c for p in photos for c in p.captions]
        owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
        started = time.perf_counter()
        text_vectors = base.encode_texts(texts)
        print(
            f"{folder.name}: {len(photos)} photos, {len(texts)} captions embedded in "
            f"{time.perf_counter() - started:.0f} s",
            flush=True,
        )
        sets.append((folder.name, [p.path for p in photos], text_vectors, owners))
    bank = base.query_bank
    if bank is None:
        raise SystemExit(f"{args.model} carries no query bank: it is served by plain cosine")

    ways: list[Way] = []
    for precision in PRECISIONS:
        for preset in PRESETS:
            options = ServingOptions(
                runtime="torch" if precision == "fp32" else "onnx",
                preset=preset,  # type: ignore[arg-type]
                quantize="none" if precision == "fp32" else "image",
            )
            with mock.patch("models.onnx_runtime.int8_saturates", return_value=precision == "int8 7-bit"):
                encoder = load_encoder(args.model, options=options)
            recalls, seconds = {}, 0.0
            for name, paths, text_vectors, owners in sets:
                started = time.perf_counter()
                images = encode_photo_files(encoder, paths)
                seconds += time.perf_counter() - started
                report = served_report(images, text_vectors, owners, bank)
                recalls[name] = (report.t2i_r1, report.i2t_r1, report.rsum)
            way = Way(preset, precision, seconds, recalls)
            ways.append(way)
            print(
                f"{way.name}: {seconds:.0f} s, "
                + ", ".join(f"{n} {r[0]:.1f} / {r[1]:.1f} ({r[2]:.1f})" for n, r in recalls.items()),
                flush=True,
            )

    lines = table(ways, args.model)
    print("\n".join(lines))
    if args.out:
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def within_rule(way: Way, reference: Way) -> bool:
    return all(
        way.recalls[name][k] >= reference.recalls[name][k] - MARGIN - 1e-9
        for name in reference.recalls
        for k in (0, 1)
    )


def table(ways: list[Way], model: str) -> list[str]:
    reference = next(w for w in ways if w.preset == "best" and w.precision == "fp32")
    names = list(reference.recalls)
    lines = [
        f"# The default way of {model}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; val splits; "
        "R@1 as served (query bank); seconds: embedding every val photo of all the sets.",
        "",
        "| way | "
        + " | ".join(f"{n} T→I / I→T R@1 (R@sum)" for n in names)
        + " | s | within 1 of best fp32 |",
        "|---|" + "---|" * len(names) + "---|---|",
    ]
    for way in ways:
        cells = [
            f"{way.recalls[n][0]:.1f} / {way.recalls[n][1]:.1f} ({way.recalls[n][2]:.1f})" for n in names
        ]
        lines.append(
            f"| {way.name} | "
            + " | ".join(cells)
            + f" | {way.seconds:.0f} | "
            + ("yes" if within_rule(way, reference) else "no")
            + " |"
        )

    def fastest(precision: str) -> Way | None:
        passing = [w for w in ways if w.precision == precision and within_rule(w, reference)]
        return min(passing, key=lambda w: w.seconds, default=None)

    fp32, int8, seven = fastest("fp32"), fastest("int8"), fastest("int8 7-bit")
    assert fp32 is not None  # best fp32 is always within its own margin
    int8_preset = int8.preset if int8 else "best"
    seven_bit = next(w for w in ways if w.precision == "int8 7-bit" and w.preset == int8_preset)
    lines += [
        "",
        f"By the rule: fp32 `{fp32.preset}`; int8 "
        + (f"`{int8.preset}`, int8 by default" if int8 else "none within it, fp32 by default")
        + (
            f"; 7-bit int8 `{int8_preset}` "
            + ("within it" if within_rule(seven_bit, reference) else "outside it")
        )
        + (f" (fastest 7-bit within it: `{seven.preset}`)" if seven and seven.preset != int8_preset else ""),
        "",
        f"    photosearch calibrate {model} --keep-bank --default-preset {fp32.preset} "
        f"--default-preset-int8 {int8_preset} --{'int8' if int8 else 'fp32'}-by-default",
    ]
    if int8:
        flag = "--seven-bit-by-default" if within_rule(seven_bit, reference) else "--no-seven-bit-by-default"
        lines.append(f"    photosearch calibrate-int8 PHOTOS --model {model} {flag}")
    return lines


if __name__ == "__main__":
    main()
