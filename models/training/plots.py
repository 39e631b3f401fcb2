"""Pictures people would rather look at than read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402


def plot_training_curves(history: Sequence[Any], path: Path, title: str = "") -> Path:
    """Loss and validation R@sum per epoch, side by side (a curve per val set when there are several)."""
    epochs = [h.epoch for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h.loss for h in history], marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    sets = list(history[-1].val.get("sets", {})) if history else []
    if sets:  # several val sets: one curve each (the epoch is picked by their sum)
        for name in sets:
            ax_val.plot(epochs, [h.val["sets"][name]["rsum"] for h in history], marker="o", label=name)
        ax_val.legend()
    else:
        ax_val.plot(epochs, [h.val_rsum for h in history], marker="o", color="tab:green")
    ax_val.set(xlabel="epoch", ylabel="R@sum (val)", title="validation R@sum")
    return _save(fig, (ax_loss, ax_val), path, title)


def plot_reranker_curves(info: dict[str, Any], path: Path, title: str = "") -> Path:
    """A re-ranker's training: its mean loss per epoch, and the held-out photos' text→photo R@1 before
    training (epoch 0) and after each epoch against the dual encoder's own, the kept epoch marked."""
    fig, (ax_loss, ax_held) = plt.subplots(1, 2, figsize=(10, 4))
    losses = info["loss_per_epoch"]
    ax_loss.plot(range(1, len(losses) + 1), losses, marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss (true photo among hard negatives)")
    curve = info.get("held_out_r1")
    if curve:
        ax_held.plot(range(len(curve)), curve, marker="o", label="re-ranked")
        dual = info["held_out_dual_r1"]
        ax_held.axhline(dual, color="tab:gray", linestyle="--", label="dual encoder alone")
        kept = info["kept_epoch"]
        ax_held.plot([kept], [curve[kept]], marker="*", markersize=16, color="tab:red", label="kept")
        ax_held.legend()
    else:
        ax_held.text(0.5, 0.5, "no photos held out", ha="center", va="center", transform=ax_held.transAxes)
    ax_held.set(xlabel="epoch (0: untrained)", ylabel="T→I R@1 (held-out train photos)", title="held out")
    return _save(fig, (ax_loss, ax_held), path, title)


def _save(fig: Any, axes: Sequence[Any], path: Path, title: str) -> Path:
    """Gridded axes with whole epochs, the title, the PNG written and the figure closed."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
