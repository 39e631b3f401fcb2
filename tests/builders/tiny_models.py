"""Tiny joint-model configs that train in seconds on a CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.joint.config import JointConfig
from models.training.options import TrainOptions

TINY_CNN = {"type": "resnet_scratch", "widths": [8, 16, 32], "blocks": 1}
TINY_PRE = {
    "image_size": 112,
    "resize": "squash",
    "mean": [0.5] * 3,
    "std": [0.5] * 3,
    "interpolation": "bilinear",
}
TEXT_SPECS: dict[str, dict[str, Any]] = {
    "bow": {"word_dim": 32},
    "bilstm": {"word_dim": 32, "hidden": 32},
    "bigru": {"word_dim": 32, "hidden": 32},
    "textcnn": {"word_dim": 32, "kernel_widths": [2, 3], "channels": 16},
    "transformer": {"word_dim": 32, "layers": 1, "heads": 2, "ff_dim": 64},
}


def tiny_config(text: str, **extra: Any) -> JointConfig:
    """A tiny joint config with a scratch CNN and the given text tower; extra: further config keys."""
    data = {
        "family": "joint",
        "name": f"tiny-{text}",
        "embed_dim": 32,
        "image_tower": TINY_CNN,
        "text_tower": {
            "type": text,
            "max_tokens": 16,
            "word_dropout": 0.1,
            "min_count": 1,
            **TEXT_SPECS[text],
        },
        "head": {"hidden": 64, "dropout": 0.1},
        "preprocess": TINY_PRE,
        "loss": {"type": "infonce", "init_temperature": 0.07},
        **extra,
    }
    return JointConfig.parse(data, f"tiny_config({text!r})")


def tiny_options(tmp: Path, epochs: int = 3) -> TrainOptions:
    return TrainOptions(
        epochs=epochs,
        batch_size=16,
        lr=3e-3,
        warmup_epochs=0.5,
        patience=10,
        device="cpu",
        cache_dir=tmp / "cache",
    )


RERANK = {
    "dim": 32,
    "heads": 2,
    "layers": 1,
    "top_n": 6,
    "negatives": 3,
    "epochs": 2,
    "batch_size": 8,
    "lr": 1e-3,
}
