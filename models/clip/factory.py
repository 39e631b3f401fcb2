"""open_clip architectures as modules: config → random-initialised model, tokenizer, preprocessing.

Mirrors open_clip's `create_model` class choice but never fetches anything: towers that open_clip
would initialise from the Hub (timm, Hugging Face text) are built empty, and a Hugging Face text
tower is built from a local folder. Weights are loaded afterwards (models/clip/encoder.py).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import open_clip
import torch
from torch import nn

from models.clip.config import ClipConfig, OpenClipArchitecture, OpenClipPreprocess
from models.errors import ModelNotFoundError
from models.preprocess import PreprocessConfig

log = logging.getLogger(__name__)

Tokenizer = Callable[[Sequence[str]], torch.Tensor]  # n texts → (n, context_length) token ids

_RESIZE_MODES = {"shortest": "shortest_crop", "squash": "squash"}


class ClipConfigError(ModelNotFoundError):
    """A clip config names an architecture or setting open_clip (or we) cannot build."""


def architecture_config(config: ClipConfig) -> dict[str, Any]:
    """open_clip's model_cfg (embed_dim, vision_cfg, text_cfg, ...) for a photosearch clip config.

    `model_cfg` inline wins (fine-tuned checkpoints and architectures open_clip lacks);
    else `architecture` names one of open_clip's built-in configs.
    """
    if config.model_cfg is not None:
        return copy.deepcopy(config.model_cfg)
    arch = config.architecture
    found = open_clip.get_model_config(str(arch)) if arch else None
    if found is None:
        raise ClipConfigError(
            f"open_clip has no architecture {arch!r} (config {config.name!r}); give "
            f"'architecture' as one of open_clip.list_models(), e.g. ViT-B-32, ViT-L-14, ViT-H-14, "
            f"xlm-roberta-large-ViT-H-14, or an inline 'model_cfg'"
        )
    return copy.deepcopy(found)


def open_clip_preprocess(
    config: ClipConfig, model_cfg: dict[str, Any], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """open_clip's preprocess dict (size, mean, std, interpolation, resize_mode) for this model.

    Order (later wins): open_clip defaults, the pretrained tag's values, the source's
    open_clip_config.json `preprocess_cfg`, the photosearch config's `preprocess_cfg`.
    """
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    merged: dict[str, Any] = merge_preprocess_dict(PreprocessCfg(), {})
    arch, tag = config.architecture, config.pretrained
    if arch and tag:
        merged = merge_preprocess_dict(merged, open_clip.get_pretrained_cfg(str(arch), str(tag)))
    merged = merge_preprocess_dict(merged, overrides or {})
    merged = merge_preprocess_dict(merged, config.preprocess_cfg or {})
    size = OpenClipArchitecture.model_validate(model_cfg).vision_cfg.image_size
    if size is not None:
        merged["size"] = size
    return merged


def to_preprocess_config(cfg: dict[str, Any]) -> PreprocessConfig:
    """open_clip's preprocess dict → our PreprocessConfig (what the indexer and service apply)."""
    read = OpenClipPreprocess.model_validate(cfg)
    size = read.size
    if isinstance(size, tuple):
        if len(set(size)) != 1:
            raise ClipConfigError(f"non-square image size {list(size)} is not supported; only square inputs")
        size = size[0]
    resize = _RESIZE_MODES.get(read.resize_mode)  # our table of equivalents
    if resize is None:
        log.warning(
            "open_clip resize_mode %r has no equivalent here; using resize+centre crop", read.resize_mode
        )
        resize = "shortest_crop"
    interpolation = read.interpolation
    if interpolation not in ("bicubic", "bilinear"):
        log.warning("interpolation %r not supported; using bicubic", interpolation)
        interpolation = "bicubic"
    return PreprocessConfig(
        image_size=int(size),
        resize=resize,  # type: ignore[arg-type]  # one of _RESIZE_MODES' values
        mean=read.mean,
        std=read.std,
        interpolation=interpolation,  # type: ignore[arg-type]  # checked just above
    )


def hf_text_name(model_cfg: dict[str, Any]) -> str | None:
    """The Hugging Face text model a config's text tower is built from (None for open_clip's own)."""
    return OpenClipArchitecture.model_validate(model_cfg).text_cfg.hf_model_name or None


def instantiate(model_cfg: dict[str, Any], hf_text_dir: Path | None = None) -> nn.Module:
    """A randomly initialised fp32 CPU model of this architecture; nothing is downloaded."""
    cfg = copy.deepcopy(model_cfg)
    vision_cfg, text_cfg = cfg.setdefault("vision_cfg", {}), cfg.setdefault("text_cfg", {})
    if "timm_model_name" in vision_cfg:
        vision_cfg["timm_model_pretrained"] = False
    is_hf_text = "hf_model_name" in text_cfg
    if is_hf_text:
        if hf_text_dir is None:
            raise ClipConfigError(f"text tower {text_cfg['hf_model_name']!r} needs its local folder")
        text_cfg["hf_model_pretrained"] = False
        text_cfg["hf_model_name"] = str(hf_text_dir)
    custom_text = bool(cfg.pop("custom_text", False)) or is_hf_text
    model_class: type[nn.Module]
    if custom_text:
        model_class = open_clip.CoCa if "multimodal_cfg" in cfg else open_clip.CustomTextCLIP
    else:
        model_class = open_clip.CLIP
    model = model_class(**cfg)
    return model


def build_tokenizer(model_cfg: dict[str, Any], hf_text_dir: Path | None = None) -> Tokenizer:
    """open_clip's BPE tokenizer (ships inside the package), or a local Hugging Face tokenizer."""
    text_cfg = OpenClipArchitecture.model_validate(model_cfg).text_cfg
    kwargs = dict(text_cfg.tokenizer_kwargs)
    if text_cfg.hf_tokenizer_name:
        if hf_text_dir is None:
            raise ClipConfigError(f"tokenizer {text_cfg.hf_tokenizer_name!r} needs its local folder")
        from open_clip.tokenizer import HFTokenizer

        tokenizer: Tokenizer = HFTokenizer(
            str(hf_text_dir),
            context_length=text_cfg.context_length,
            tokenizer_mode=text_cfg.tokenizer_mode,
            **kwargs,
        )
        return tokenizer
    return open_clip.SimpleTokenizer(context_length=text_cfg.context_length, **kwargs)  # type: ignore[no-any-return]
