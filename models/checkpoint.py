"""Self-describing checkpoints: one safetensors file holding the weights, with the model config
and training facts in its metadata, so a served model is rebuilt from the file alone."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.config import ModelConfig, parse_model_config
from models.errors import InvalidInputError

FORMAT = "photosearch-checkpoint/1"


class CheckpointError(InvalidInputError):
    """A checkpoint file is missing, unreadable or not one of ours."""


@dataclass
class Checkpoint:
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    info: dict[str, Any]
    digest: str
    path: Path


def save_checkpoint(
    path: Path,
    *,
    config: ModelConfig,
    state_dict: dict[str, torch.Tensor],
    info: dict[str, Any] | None = None,
) -> Path:
    """Write weights + config atomically (temp file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    metadata = {
        "format": FORMAT,
        "config": json.dumps(config.to_json(), sort_keys=True),
        "info": json.dumps(info or {}, sort_keys=True, default=str),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path


def file_digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


# sha256 of checkpoint files read in this process, keyed by the file's identity and stamp: finding
# which weights a store holds and then loading them reads a large checkpoint once, not twice; a file
# replaced or rewritten since (other inode, size or mtime) is hashed again.
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def checkpoint_digest(path: Path) -> str:
    """file_digest of a checkpoint, computed once per process for an unchanged file."""
    stat = Path(path).stat()
    stamp = (str(Path(path).resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if stamp not in _DIGESTS:
        _DIGESTS[stamp] = file_digest(path)
    return _DIGESTS[stamp]


def read_checkpoint_config(path: Path) -> ModelConfig:
    """Only the config, without loading tensors."""
    return _open_metadata(Path(path))[0]


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    config, info = _open_metadata(path)
    tensors: dict[str, torch.Tensor] = {}
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
            tensors[key] = handle.get_tensor(key)
    return Checkpoint(config, tensors, info, checkpoint_digest(path), path)


def _open_metadata(path: Path) -> tuple[ModelConfig, dict[str, Any]]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - safetensors raises several types
        raise CheckpointError(f"{path} is not a safetensors file: {exc}") from exc
    if metadata.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a photosearch checkpoint (metadata format={metadata.get('format')!r}, "
            f"expected {FORMAT!r})"
        )
    info = json.loads(metadata["info"]) if "info" in metadata else {}
    return parse_model_config(json.loads(metadata["config"]), f"{path} (its stored config)"), info
