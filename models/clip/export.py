"""Writing clip models out: our self-describing checkpoint, or open_clip's local-dir folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip
from safetensors.torch import save_file

from models.checkpoint import save_checkpoint
from models.clip.config import ClipConfig
from models.clip.encoder import ClipEncoder


def clip_checkpoint_config(encoder: ClipEncoder, name: str, **extra: Any) -> ClipConfig:
    """All that rebuilds the model from the checkpoint alone: family, architecture, preprocessing.
    extra: further config keys (base_model, description); an unknown one is a ModelConfigError."""
    data = {
        "family": "clip",
        "name": name,
        "architecture": encoder.architecture,
        "model_cfg": encoder.model_cfg,
        "preprocess_cfg": {
            k: list(v) if isinstance(v, tuple) else v for k, v in encoder.preprocess_cfg.items()
        },
        "preprocess": encoder.preprocess.to_dict(),
        "embed_dim": encoder.dim,
        "precision": encoder.precision,
        "open_clip_version": open_clip.__version__,
        **extra,
    }
    return ClipConfig.parse(data, f"clip checkpoint config for {name!r}")


def save_clip_checkpoint(
    encoder: ClipEncoder,
    path: Path,
    *,
    name: str | None = None,
    info: dict[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """A photosearch checkpoint: `create_encoder(path)` rebuilds this model from the file alone."""
    config = clip_checkpoint_config(encoder, name or Path(path).stem, **extra)
    return save_checkpoint(Path(path), config=config, state_dict=encoder.model.state_dict(), info=info)


def write_local_dir(encoder: ClipEncoder, folder: Path) -> Path:
    """open_clip's local-dir layout (open_clip_config.json + open_clip_model.safetensors), which
    `open_clip.create_model("local-dir:FOLDER")` and our `local-dir:` loader both read."""
    folder.mkdir(parents=True, exist_ok=True)
    preprocess = {k: list(v) if isinstance(v, tuple) else v for k, v in encoder.preprocess_cfg.items()}
    (folder / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": encoder.model_cfg, "preprocess_cfg": preprocess}, indent=2)
    )
    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.model.state_dict().items()}
    save_file(tensors, str(folder / "open_clip_model.safetensors"))
    return folder
