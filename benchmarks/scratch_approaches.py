"""Train the from-scratch approaches on several data sets for longer, resumably, and draw their curves.

    .venv/bin/python benchmarks/scratch_approaches.py \
        [--data ../shared/data/flickr8k --data ../shared/data/cc3m] [--out-dir data/scratch] [--only NAME ...]

Each approach is trained by `photosearch train`'s trainer (the config's own settings, seed 0, the data sets
at weight 1 each, early stopping on the sum of the val sets' R@sum). A run that was stopped (a session's
end, Ctrl-C) carries on from its `.resume.pt` on the next call, exactly as if never stopped; a finished
run (its checkpoint written) is measured, not trained again. Writes

- benchmarks/scratch-approaches.png: training loss and each val set's R@sum per epoch, a line per approach;
- benchmarks/scratch-approaches.md: each approach's best epoch measured from the photo files through the
  public Encoder API on each val set, its epochs, time and the machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.models_zoo import machine  # noqa: E402
from models.checkpoint import load_checkpoint  # noqa: E402
from models.registry import create_encoder, load_joint_config  # noqa: E402
from models.training.data import training_sets  # noqa: E402
from models.training.evaluate import RetrievalReport, evaluate_encoder  # noqa: E402
from models.training.options import TrainOptions  # noqa: E402
from models.training.resume import load_resume, resume_path  # noqa: E402
from models.training.train import train_joint  # noqa: E402

# (config, epochs): the schedule each approach is given (cosine over these epochs, patience from its config)
RUNS: list[tuple[str, int]] = [
    ("joint-textcnn", 20),
    ("joint-scratch-bigru", 12),
    ("joint-scratch-bilstm", 12),
    ("joint-bow-captions", 20),
]
HERE = Path(__file__).resolve().parent
PNG, MD = HERE / "scratch-approaches.png", HERE / "scratch-approaches.md"


def train_or_resume(config_name: str, epochs: int, data: list[Path], out: Path) -> None:
    """Train the approach into `out`, carrying on from its resume file when an earlier call was stopped;
    nothing to do when its checkpoint is already written."""
    if out.is_file():
        return
    config = load_joint_config(config_name)
    opts = TrainOptions.from_config(
        config,
        epochs=epochs,
        device="cuda" if torch.cuda.is_available() else "cpu",
        cache_dir=Path("data/cache"),
    )
    resume = resume_path(out) if resume_path(out).is_file() else None
    train_joint(config, training_sets(data), out, opts, resume=resume)


def measure(out: Path, data: list[Path]) -> dict[str, Any]:
    """The finished run's history (from its resume file) and its best epoch measured on each val set from
    the photo files, as a user's search would rank them."""
    saved = load_resume(out)
    encoder = create_encoder(str(out), device="cpu")
    reports = {path.name: evaluate_encoder(encoder, path, "val") for path in data}
    info = load_checkpoint(out).info
    return {"history": saved["history"], "best_epoch": info["best_epoch"], "reports": reports}


def plot(results: dict[str, dict[str, Any]], sets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 1 + len(sets), figsize=(5 * (1 + len(sets)), 4))
    for name, result in results.items():
        history = result["history"]
        epochs = [h["epoch"] for h in history]
        axes[0].plot(epochs, [h["loss"] for h in history], marker=".", label=name)
        for ax, set_name in zip(axes[1:], sets, strict=True):
            ax.plot(epochs, [h["val"]["sets"][set_name]["rsum"] for h in history], marker=".", label=name)
    axes[0].set(xlabel="epoch", ylabel="training loss", title="training loss (each its own objective)")
    for ax, set_name in zip(axes[1:], sets, strict=True):
        ax.set(xlabel="epoch", ylabel="val R@sum (of 600)", title=f"{set_name} val R@sum")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("From-scratch approaches trained on " + " + ".join(sets))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _cells(report: RetrievalReport) -> str:
    return f"{report.t2i_r1:.1f} / {report.i2t_r1:.1f} ({report.rsum:.1f})"


def markdown(results: dict[str, dict[str, Any]], sets: list[str], schedules: dict[str, int]) -> str:
    head = "| approach | epochs run (best) of the schedule | time of the epochs (train + val) | "
    head += " | ".join(f"{s} T→I / I→T R@1 (R@sum)" for s in sets)
    head += " | val R@sum (both sets) at epoch 1 → best |"
    lines = [head, "|" + "---|" * (4 + len(sets))]
    for name, result in results.items():
        history = result["history"]
        minutes = sum(h["seconds"] for h in history) / 60
        rsums = {h["epoch"]: h["val_rsum"] for h in history}
        lines.append(
            f"| {name} | {len(history)} ({result['best_epoch']}) of {schedules[name]} | {minutes:.1f} min | "
            + " | ".join(_cells(result["reports"][s]) for s in sets)
            + f" | {rsums[1]:.1f} → {rsums[result['best_epoch']]:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", help="a captioned folder; repeat for several")
    parser.add_argument("--out-dir", type=Path, default=Path("data/scratch"))
    parser.add_argument("--only", action="append", help="an approach's config name; repeat for several")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    data = args.data or [Path("../shared/data/flickr8k"), Path("../shared/data/cc3m")]
    runs = [(name, epochs) for name, epochs in RUNS if not args.only or name in args.only]
    for name, epochs in runs:
        train_or_resume(name, epochs, data, args.out_dir / f"{name}.safetensors")
    finished = [(n, e) for n, e in RUNS if (args.out_dir / f"{n}.safetensors").is_file()]
    results = {name: measure(args.out_dir / f"{name}.safetensors", data) for name, _ in finished}
    sets = [path.name for path in data]
    plot(results, sets, PNG)
    table = markdown(results, sets, dict(finished))
    MD.write_text(
        "# From-scratch approaches on " + " + ".join(sets) + "\n\n"
        f"Written by `benchmarks/scratch_approaches.py`. Machine: {machine()}.\n\n"
        "Each val set measured on its own from the photo files through the public Encoder API, the best "
        "epoch by the sum of the sets' val R@sum. Curves: `benchmarks/scratch-approaches.png`.\n\n"
        + table
        + "\n"
    )
    print(table)


if __name__ == "__main__":
    main()
