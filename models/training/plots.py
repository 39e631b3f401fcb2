"""Pictures people would rather look at than read."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
