"""What each test-time setting of a joint model is worth on the val split: resolution, mirror averaging,
query-bank normalisation. Prints a markdown table, writes it beside a PNG bar chart.

    python benchmarks/test_time.py [--model joint-default] [--sizes 224 256 288] [--out benchmarks/test-time]

Each photo is embedded from its file at each resolution, as itself and mirrored; the query bank is the
one the checkpoint carries (built as the checkpoint is served). Figures: val gallery of 1,000 photos and
5,000 captions, R@1/5/10 both ways and R@sum.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "flickr8k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="joint-default", help="registered name or checkpoint path")
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 256, 288])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "test-time")
    args = parser.parse_args()

    import torch

    from models.loading import iterate_photo_batches
    from models.registry import create_encoder
    from models.training.data import load_captioned_photos
    from models.training.evaluate import RetrievalReport, retrieval_report, served_report

    encoder = create_encoder(args.model, device="auto")
    model = encoder.model  # type: ignore[attr-defined]  # joint family
    bank = encoder.query_bank
    photos = load_captioned_photos(args.data, "val")
    owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
    started = time.perf_counter()
    texts = encoder.encode_texts([c for p in photos for c in p.captions])

    def embed(size: int) -> tuple[np.ndarray, np.ndarray]:
        """→ unit vectors of each photo and of its mirror image at this resolution."""
        preprocess = dataclasses.replace(encoder.preprocess, image_size=size)
        plain = np.zeros((len(photos), encoder.dim), np.float32)
        mirrored = np.zeros_like(plain)
        for batch in iterate_photo_batches([p.path for p in photos], preprocess, batch_size=32):
            with torch.inference_mode():
                pixels = batch.pixels.to(encoder.device)
                for target, view in ((plain, pixels), (mirrored, pixels.flip(-1))):
                    vectors = torch.nn.functional.normalize(model.encode_image(view).float(), dim=-1)
                    target[batch.indices] = vectors.cpu().numpy()
        return plain, mirrored

    rows: list[tuple[str, RetrievalReport]] = []

    def measure(name: str, images: np.ndarray) -> None:
        """A row for plain cosine and, when the model has a bank, one ranked as served."""
        rows.append((name, retrieval_report(images, texts, owners)))
        if bank is not None:
            rows.append((f"{name} + query bank", served_report(images, texts, owners, bank)))

    for size in args.sizes:
        plain, mirrored = embed(size)
        both = plain + mirrored
        both /= np.linalg.norm(both, axis=1, keepdims=True)
        measure(f"{size} px", plain)
        measure(f"{size} px + mirror", both)
    extra = list(getattr(encoder, "extra_sizes", []))
    if extra:  # several resolutions averaged: measured as served, from the files through the encoder
        from models.training.evaluate import encode_photo_files

        images = encode_photo_files(encoder, [p.path for p in photos], batch_size=32)
        measure(f"{encoder.preprocess.image_size} + {' + '.join(map(str, extra))} px + mirror", images)
    seconds = time.perf_counter() - started

    served = encoder.preprocess.image_size, getattr(encoder, "hflip", False), bank is not None
    lines = [
        f"Test-time settings of `{encoder.key}` on {args.data.name} val "
        f"({len(photos)} photos, {len(texts)} captions); served as: {served[0]} px"
        + "".join(f" + {size} px" for size in extra)
        + ", "
        f"mirror {'on' if served[1] else 'off'}, query bank {'on' if served[2] else 'off'}"
        + (f" ({bank.settings().to_json()})" if bank is not None else "")
        + ".",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, "
        f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}; {seconds:.0f} s.",
        "",
        "| setting | T→I R@1 | R@5 | R@10 | I→T R@1 | R@5 | R@10 | R@sum |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | {r.t2i_r1:.1f} | {r.t2i_r5:.1f} | {r.t2i_r10:.1f} "
            f"| {r.i2t_r1:.1f} | {r.i2t_r5:.1f} | {r.i2t_r10:.1f} | {r.rsum:.1f} |"
        )
    table = "\n".join(lines)
    print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(table + "\n")
    plot(rows, args.out.with_suffix(".png"), encoder.key)
    print(f"\nwritten: {args.out.with_suffix('.md')} {args.out.with_suffix('.png')}")


def plot(rows: list, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, _ in rows]
    y = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 0.38 * len(rows) + 1.4))
    ax.barh(y - 0.2, [r.t2i_r1 for _, r in rows], 0.4, label="text→photo R@1")
    ax.barh(y + 0.2, [r.i2t_r1 for _, r in rows], 0.4, label="photo→text R@1")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("R@1 on the val split (%)")
    ax.set_title(f"Test-time settings: {title}", fontsize=10)
    for goal, color in ((30, "C0"), (40, "C1")):  # the goals set for this data (issue 3)
        ax.axvline(goal, color=color, linestyle="--", linewidth=1)
    ax.set_xlim(0, 45)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2, frameon=False)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
