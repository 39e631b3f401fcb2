"""Models by name from JSON configs (models/configs/*.json); checkpoints found by name or path.

`create_encoder("joint-default")` finds the config and its checkpoint; a path to a checkpoint file
works too, because a checkpoint carries its own config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from models.checkpoint import Checkpoint, checkpoint_digest, load_checkpoint, read_checkpoint_config
from models.clip.config import ClipConfig
from models.config import ModelConfig, read_model_config
from models.encoder import Encoder
from models.errors import InvalidInputError, ModelNotFoundError
from models.joint.config import JointConfig
from models.runtime import resolve_device

CONFIG_DIR = Path(__file__).parent / "configs"
BUNDLED_CHECKPOINT_DIR = Path(__file__).parent / "checkpoints"
DEFAULT_MODEL = "joint-default"
# Shipped models that were joint-default before (newest first): a library indexed with one of them by
# default keeps being served with it until it is re-indexed with the default (app/storage/stored_models.py)
EARLIER_DEFAULTS = ("joint-default-v6", "joint-default-v5", "joint-default-v4", "joint-flickr8k")


def list_models() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


def load_model_config(name: str) -> ModelConfig:
    """The registered config `name`, parsed (a misspelt key is a ModelConfigError naming the file)."""
    path = CONFIG_DIR / f"{name}.json"
    if not path.is_file():
        raise ModelNotFoundError(f"Model config for {name!r} not found. Available: {list_models()}")
    config = read_model_config(path)
    return config if config.name else config.replace(name=name)


def load_joint_config(name: str) -> JointConfig:
    """The registered joint-family config `name` (what `photosearch train` trains)."""
    config = load_model_config(name)
    if not isinstance(config, JointConfig):
        raise InvalidInputError(
            f"{name!r} is a {config.family}-family model; training takes joint ones (clip models: finetune)"
        )
    return config


def checkpoint_search_dirs(checkpoint_dirs: Sequence[Path] = ()) -> list[Path]:
    """The folders searched for weights, in order: the caller's (a user's settings), then the bundled."""
    return [*checkpoint_dirs, BUNDLED_CHECKPOINT_DIR]


def find_checkpoint(name: str, config: ModelConfig, checkpoint_dirs: Sequence[Path] = ()) -> Path:
    filename = config.checkpoint or f"{name}.safetensors"
    looked = [d / filename for d in checkpoint_search_dirs(checkpoint_dirs)]
    for candidate in looked:
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"No weights for model {name!r}: looked for {[str(p) for p in looked]}. Train them with "
        f"`photosearch train --model {name}` or pass a checkpoint file."
    )


def checkpoint_file(model: str, checkpoint_dirs: Sequence[Path] = ()) -> Path:
    """A registered joint model's weights file, or the path given when it is a checkpoint file."""
    if Path(model).suffix == ".safetensors" or model not in list_models():
        if not Path(model).is_file():
            raise ModelNotFoundError(f"checkpoint file not found: {model}")
        return Path(model)
    return find_checkpoint(model, load_model_config(model), checkpoint_dirs)


def weights_key_of(name: str, checkpoint_dirs: Sequence[Path] = ()) -> str:
    """A registered joint model's weights key (Encoder.weights_key: the name inside its checkpoint and
    the file's digest) without building it, or "" when its checkpoint is not there."""
    config = load_model_config(name)
    if not isinstance(config, JointConfig):
        return ""
    try:
        path = find_checkpoint(name, config, checkpoint_dirs)
    except ModelNotFoundError:
        return ""
    stored = read_checkpoint_config(path)
    return f"{stored.name or path.stem}@{checkpoint_digest(path)[:12]}"


def create_encoder(
    model: str,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "auto",
    checkpoint_dirs: Sequence[Path] = (),
) -> Encoder:
    """Build an encoder from a registered name (with an optional checkpoint) or a checkpoint path.

    checkpoint_dirs: folders searched for weights before the bundled models/checkpoints/ (the
    `checkpoint_dir` setting, PHOTOSEARCH_CHECKPOINT_DIR)."""
    target = resolve_device(device)
    dirs = checkpoint_search_dirs(checkpoint_dirs)
    if model.startswith("local-dir:"):  # clip: an open_clip folder needs no registered config
        from models.clip.encoder import local_dir_config

        return _build_clip(local_dir_config(model), model, target, dirs)
    as_path = Path(model)
    if checkpoint is None and as_path.suffix == ".safetensors":
        if not as_path.is_file():
            raise ModelNotFoundError(f"checkpoint file not found: {as_path}")
        return _from_checkpoint(load_checkpoint(as_path), target, dirs)
    config = load_model_config(model)
    if isinstance(config, ClipConfig):
        # checkpoint: open_clip weights file, local-dir: folder or photosearch checkpoint; None searches
        return _build_clip(config, checkpoint, target, dirs)
    ckpt_path = (
        Path(checkpoint) if checkpoint is not None else find_checkpoint(model, config, checkpoint_dirs)
    )
    if not ckpt_path.is_file():
        raise ModelNotFoundError(f"checkpoint file not found: {ckpt_path}")
    return _from_checkpoint(load_checkpoint(ckpt_path), target, dirs)


def _from_checkpoint(ckpt: Checkpoint, device: torch.device, search_dirs: Sequence[Path]) -> Encoder:
    """A photosearch checkpoint rebuilds its model alone: its stored config says which family."""
    config = ckpt.config
    encoder: Encoder
    if isinstance(config, JointConfig):
        from models.joint.encoder import build_joint_encoder

        encoder = build_joint_encoder(config.name or ckpt.path.stem, config, ckpt, device)
    else:
        encoder = _build_clip(config, ckpt, device, search_dirs)
    encoder.checkpoint_path = ckpt.path
    return encoder


def _build_clip(
    config: ClipConfig,
    source: Checkpoint | str | Path | None,
    device: torch.device,
    search_dirs: Sequence[Path],
) -> Encoder:
    try:
        from models.clip.encoder import build_clip_encoder
    except ImportError as exc:
        raise ModelNotFoundError("the clip family is not available in this build") from exc
    encoder: Encoder = build_clip_encoder(config, source, device, search_dirs)
    return encoder
