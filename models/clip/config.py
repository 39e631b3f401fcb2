"""The clip family's config: models/configs/clip-*.json and the copy a fine-tuned checkpoint carries.

`model_cfg` and `preprocess_cfg` are open_clip's own dictionaries (its architecture and preprocessing
schema), passed to open_clip as they are; every other key is ours and checked (models/schema.py)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

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


class _OpenClipSection(BaseModel):
    """A view of one of open_clip's own dictionaries: the keys we read, typed, with open_clip's
    defaults; every other key belongs to open_clip and is passed to it untouched."""

    model_config = ConfigDict(extra="allow", frozen=True)


class OpenClipVision(_OpenClipSection):
    image_size: int | tuple[int, ...] | None = None  # None: the preprocessing's size
    patch_size: int = 16
    width: int = 768


class OpenClipText(_OpenClipSection):
    context_length: int = 77
    hf_model_name: str | None = None  # a Hugging Face transformer as the text tower
    hf_tokenizer_name: str | None = None
    tokenizer_mode: str | None = None
    tokenizer_kwargs: dict[str, Any] = {}


class OpenClipArchitecture(_OpenClipSection):
    """open_clip's model_cfg (inline in a config, or open_clip's built-in one), as far as we read it."""

    vision_cfg: OpenClipVision = OpenClipVision()
    text_cfg: OpenClipText = OpenClipText()


class OpenClipPreprocess(_OpenClipSection):
    """open_clip's preprocess dict (its PreprocessCfg merged with a tag's and a folder's values)."""

    size: int | tuple[int, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
