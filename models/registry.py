"""Models by name from JSON configs (models/configs/*.json); checkpoints found by name or path.

`create_encoder("joint-default")` finds the config and its checkpoint; a path to a checkpoint file
works too, because a checkpoint carries its own config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import load_checkpoint
from models.encoder import Encoder
from models.errors import ModelNotFoundError
from models.runtime import resolve_device

CONFIG_DIR = Path(__file__).parent / "configs"
BUNDLED_CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"


def list_models() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_model_config(name: str) -> dict[str, Any]:
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelNotFoundError(f"Model config for {name!r} not found. Available: {list_models()}")
    config: dict[str, Any] = json.loads(path.read_text())
    config.setdefault("name", name)
    return config


def checkpoint_search_dirs() -> list[Path]:
    dirs = []
    if extra := os.environ.get("PHOTOSEARCH_CHECKPOINT_DIR"):
        dirs.append(Path(extra))
    dirs.append(BUNDLED_CHECKPOINT_DIR)
    return dirs


def find_checkpoint(name: str, config: dict[str, Any]) -> Path:
    filename = config.get("checkpoint", f"{name}.safetensors")
    looked = [d / filename for d in checkpoint_search_dirs()]
    for candidate in looked:
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"No weights for model {name!r}: looked for {[str(p) for p in looked]}. Train them with "
        f"`photosearch train --model {name}` or pass a checkpoint file."
    )


def create_encoder(
    model: str, checkpoint: str | Path | None = None, device: str | torch.device = "auto"
) -> Encoder:
    """Build an encoder from a registered name (with an optional checkpoint) or a checkpoint path."""
    target = resolve_device(device)
    if model.startswith("local-dir:"):  # clip: an open_clip folder needs no registered config
        from models.clip.encoder import local_dir_config

        return _build_clip(local_dir_config(model), model, target, checkpoint_search_dirs())
    as_path = Path(model)
    if checkpoint is None and as_path.suffix == ".safetensors":
        if not as_path.is_file():
            raise ModelNotFoundError(f"checkpoint file not found: {as_path}")
        checkpoint = as_path
        config = None
    else:
        config = load_model_config(model)
    if config is not None and config.get("family") == "clip":
        # checkpoint: open_clip weights file, local-dir: folder or photosearch checkpoint; None searches
        return _build_clip(config, checkpoint, target, checkpoint_search_dirs())
    ckpt_path = Path(checkpoint) if checkpoint is not None else find_checkpoint(model, config or {})
    if not ckpt_path.is_file():
        raise ModelNotFoundError(f"checkpoint file not found: {ckpt_path}")
    ckpt = load_checkpoint(ckpt_path)
    config = ckpt.config
    family = config.get("family")
    name = str(config.get("name", ckpt_path.stem))
    if family == "joint":
        from models.joint.encoder import build_joint_encoder

        return build_joint_encoder(name, config, ckpt, target)
    if family == "clip":
        return _build_clip(config, ckpt, target, checkpoint_search_dirs())
    raise ModelNotFoundError(f"unknown model family {family!r} in {ckpt_path}; known: joint, clip")


def _build_clip(
    config: dict[str, Any], ckpt: Any, device: torch.device, search_dirs: Sequence[Path]
) -> Encoder:
    try:
        from models.clip.encoder import build_clip_encoder
    except ImportError as exc:
        raise ModelNotFoundError("the clip family is not available in this build") from exc
    encoder: Encoder = build_clip_encoder(config, ckpt, device, search_dirs)
    return encoder
