"""A tiny open_clip architecture (2-layer ViT and text transformer, width 64, 32 px) for tests and
speed checks with random weights. It exercises every real code path of the clip family in
milliseconds on a CPU; it knows nothing about photos and is never a default."""

from __future__ import annotations

import copy
from typing import Any

from models.clip.config import ClipConfig

TINY_MODEL_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def tiny_clip_config(name: str = "clip-tiny", **extra: Any) -> ClipConfig:
    """A photosearch clip config for the tiny architecture (inline `model_cfg`, no pretrained tag)."""
    return ClipConfig.parse(
        {
            "family": "clip",
            "name": name,
            "description": "tiny random-weight CLIP for tests",
            "architecture": None,
            "model_cfg": copy.deepcopy(TINY_MODEL_CFG),
            **extra,
        },
        "tiny_clip_config()",
    )
