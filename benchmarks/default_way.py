"""The default way a joint checkpoint is served, by the rule: the fastest preset and precision within
1 R@1 point of best fp32, both ways, on each val set. Measures every preset (fast, balanced, best) in
fp32 (PyTorch), with the int8 image tower (ONNX Runtime, the checkpoint's int8 calibration) and with the
7-bit int8 weights a CPU without VNNI uses, each as served (with the checkpoint's query bank), and each
int8 way again with the int8 text tower; prints the table, the choice and the `photosearch calibrate`
command that writes it into the checkpoint. The int8 text tower is taken by default where it is within
the rule at the chosen int8 preset and a text query in fp32 misses the 10 ms goal (p50, one query at a
time through ONNX Runtime, measured here).

    python benchmarks/default_way.py --model CHECKPOINT --data ../shared/data/flickr8k \
        --data ../shared/data/cc3m [--out benchmarks/default-way]

The captions of a val set are embedded once per text tower (PyTorch fp32: quantize=image leaves the text
tower in fp32; int8 and its 7-bit file) and ranked against each way's photo vectors; seconds are the
photos' embedding (decode included) of all the sets on this machine. Needs `photosearch calibrate-int8`
run for the checkpoint first.
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
TEXT_QUERY_GOAL_MS = 10.0  # p50 a text query's embedding must meet on the serving CPU
QUERIES = ["a dog running on the beach", "people at a conference", "a laptop on a desk", "a red car parked"]
ROUNDS = 5


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

    from benchmarks.runtime import query_p50
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
        sets.append((folder.name, [p.path for p in photos], texts, text_vectors, owners))
    bank = base.query_bank
    if bank is None:
        raise SystemExit(f"{args.model} carries no query bank: it is served by plain cosine")

    ways: list[Way] = []
    latency: dict[str, float] = {}
    for precision in PRECISIONS:
        # the captions through this precision's int8 text tower, the same at every preset
        int8_texts = {}
        if precision != "fp32":
            text_way = ServingOptions(runtime="onnx", quantize="text")
            with mock.patch("models.onnx_runtime.int8_saturates", return_value=precision == "int8 7-bit"):
                text_encoder = load_encoder(args.model, options=text_way)
            latency[f"{precision} text"] = query_p50(text_encoder, ROUNDS, QUERIES)
            int8_texts = {name: text_encoder.encode_texts(texts) for name, _, texts, _, _ in sets}
        for preset in PRESETS:
            options = ServingOptions(
                runtime="torch" if precision == "fp32" else "onnx",
                preset=preset,  # type: ignore[arg-type]
                quantize="none" if precision == "fp32" else "image",
            )
            with mock.patch("models.onnx_runtime.int8_saturates", return_value=precision == "int8 7-bit"):
                encoder = load_encoder(args.model, options=options)
            recalls, seconds, vectors = {}, 0.0, {}
            for name, paths, _, text_vectors, owners in sets:
                started = time.perf_counter()
                vectors[name] = encode_photo_files(encoder, paths)
                seconds += time.perf_counter() - started
                report = served_report(vectors[name], text_vectors, owners, bank)
                recalls[name] = (report.t2i_r1, report.i2t_r1, report.rsum)
            report_way(ways, Way(preset, precision, seconds, recalls))
            if precision == "fp32":
                continue
            # the same photo vectors against the captions through the int8 text tower
            recalls = {}
            for name, _, _, _, owners in sets:
                report = served_report(vectors[name], int8_texts[name], owners, bank)
                recalls[name] = (report.t2i_r1, report.i2t_r1, report.rsum)
            report_way(ways, Way(preset, f"{precision} + int8 text", seconds, recalls))
    fp32_text = load_encoder(args.model, options=ServingOptions(runtime="onnx", quantize="none"))
    latency["fp32 text"] = query_p50(fp32_text, ROUNDS, QUERIES)
    print(", ".join(f"{k} query p50 {v:.1f} ms" for k, v in latency.items()), flush=True)

    lines = table(ways, args.model, latency)
    print("\n".join(lines))
    if args.out:
        args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def report_way(ways: list[Way], way: Way) -> None:
    ways.append(way)
    print(
        f"{way.name}: {way.seconds:.0f} s, "
        + ", ".join(f"{n} {r[0]:.1f} / {r[1]:.1f} ({r[2]:.1f})" for n, r in way.recalls.items()),
        flush=True,
    )


def within_rule(way: Way, reference: Way) -> bool:
    return all(
        way.recalls[name][k] >= reference.recalls[name][k] - MARGIN - 1e-9
        for name in reference.recalls
        for k in (0, 1)
    )


def table(ways: list[Way], model: str, latency: dict[str, float]) -> list[str]:
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
    int8_text = next(w for w in ways if w.precision == "int8 + int8 text" and w.preset == int8_preset)
    text_int8 = (
        int8 is not None
        and within_rule(int8_text, reference)
        and latency.get("fp32 text", 0.0) > TEXT_QUERY_GOAL_MS
    )
    lines += [
        "",
        "Text query p50 (one at a time, ONNX Runtime): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in latency.items()),
        "",
        f"By the rule: fp32 `{fp32.preset}`; int8 "
        + (f"`{int8.preset}`, int8 by default" if int8 else "none within it, fp32 by default")
        + (
            f"; 7-bit int8 `{int8_preset}` "
            + ("within it" if within_rule(seven_bit, reference) else "outside it")
        )
        + (f" (fastest 7-bit within it: `{seven.preset}`)" if seven and seven.preset != int8_preset else "")
        + f"; int8 text tower at `{int8_preset}` "
        + ("within it" if within_rule(int8_text, reference) else "outside it")
        + (
            ", taken by default (fp32 text over the goal)"
            if text_int8
            else ", not taken by default" + (" (fp32 text meets the goal)" if int8 else "")
        ),
        "",
        f"    photosearch calibrate {model} --keep-bank --default-preset {fp32.preset} "
        f"--default-preset-int8 {int8_preset} --{'int8' if int8 else 'fp32'}-by-default "
        f"--text-{'int8' if text_int8 else 'fp32'}-by-default",
    ]
    if int8:
        flag = "--seven-bit-by-default" if within_rule(seven_bit, reference) else "--no-seven-bit-by-default"
        lines.append(f"    photosearch calibrate-int8 PHOTOS --model {model} {flag}")
    return lines


if __name__ == "__main__":
    main()
