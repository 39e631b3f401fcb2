"""The clip family's config: models/configs/clip-*.json and the copy a fine-tuned checkpoint carries.

`model_cfg` and `preprocess_cfg` are open_clip's own dictionaries (its architecture and preprocessing
schema), passed to open_clip as they are; every other key is ours and checked (models/schema.py)."""

from __future__ import annotations

from typing import Any, Literal

from models.preprocess import PreprocessConfig
from models.schema import StrictConfig

Precision = Literal["auto", "bf16", "fp16", "fp32"]


class ClipConfig(StrictConfig):
    family: Literal["clip"]
    name: str | None = None
    description: str = ""
    architecture: str | None = None  # one of open_clip.list_models(), unless model_cfg is inline
    pretrained: str | None = None  # open_clip's pretrained tag (where its Hub weights are)
    hf_repo: str | None = None  # the Hub repository whose cache holds the weights
    precision: Precision = "auto"
    model_cfg: dict[str, Any] | None = None  # open_clip's architecture, inline
    preprocess_cfg: dict[str, Any] | None = None  # open_clip's preprocessing overrides
    checkpoint: str | None = None
    # written by photosearch checkpoints (models/clip/export.py)
    preprocess: PreprocessConfig | None = None
    embed_dim: int | None = None
    open_clip_version: str | None = None
    base_model: str | None = None
