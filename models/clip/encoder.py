"""The clip family behind the common Encoder interface: any open_clip architecture by name.

`build_clip_encoder(config, source, device)` is what `models.registry.create_encoder` calls; where the
weights may come from (and the env vars and flags that point at them) is in models/clip/weights.py.
On CUDA the towers run under bf16 autocast (fp16 where bf16 is unsupported); on CPU in fp32.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from torch import nn

from models.checkpoint import Checkpoint, CheckpointError, load_checkpoint, read_checkpoint_config
from models.clip.config import ClipConfig, OpenClipArchitecture, Precision
from models.clip.factory import (
    ClipConfigError,
    Tokenizer,
    architecture_config,
    build_tokenizer,
    hf_text_name,
    instantiate,
    open_clip_preprocess,
    to_preprocess_config,
)
from models.clip.weights import (
    ClipWeights,
    locate_hf_text_dir,
    locate_weights,
    parse_local_dir,
    read_local_dir,
    read_weights_file,
)
from models.encoder import Encoder, l2_normalise
from models.errors import InvalidInputError
from models.onnx_runtime import QUANTIZE_KEYS, OnnxTowers

log = logging.getLogger(__name__)

MAX_LOGIT_SCALE = 100.0


class ClipWeightsMismatchError(InvalidInputError):
    """A weights file exists but does not fit the architecture it was given for."""


def autocast_dtype(device: torch.device, precision: Precision = "auto") -> torch.dtype | None:
    """Mixed-precision dtype for this device: None (fp32) on CPU or when precision is 'fp32'."""
    if device.type != "cuda" or precision == "fp32":
        return None
    if precision == "fp16":
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


class ClipEncoder(OnnxTowers, Encoder):
    family = "clip"

    def __init__(
        self,
        name: str,
        model: nn.Module,
        tokenizer: Tokenizer,
        *,
        model_cfg: dict[str, Any],
        preprocess_cfg: dict[str, Any],
        digest: str,
        device: torch.device,
        precision: Precision = "auto",
        architecture: str | None = None,
    ) -> None:
        self.name = name
        self.model: Any = model.to(device).eval()  # an open_clip CLIP / CustomTextCLIP (untyped)
        self.tokenizer = tokenizer
        self.model_cfg = model_cfg  # open_clip's, with the original Hugging Face names
        self.preprocess_cfg = preprocess_cfg  # open_clip's form; travels into fine-tuned checkpoints
        self.preprocess = to_preprocess_config(preprocess_cfg)
        self.architecture = architecture
        self.dim = int(model_cfg["embed_dim"])
        self.checkpoint_digest = digest
        self.device = device
        self.precision = precision
        self.amp_dtype = autocast_dtype(device, precision)
        self.max_batch = self.suggested_batch_size()

    @property
    def key(self) -> str:
        """The weights, plus int8 when quantized: such vectors never share an index with fp32 ones."""
        return f"{self.weights_key}{QUANTIZE_KEYS[self.quantize]}"

    @property
    def logit_scale(self) -> float:  # type: ignore[override]
        """exp(the model's learned temperature), clamped to 100 as in CLIP training."""
        raw = float(self.model.logit_scale.detach().float().exp().mean())
        return min(raw, MAX_LOGIT_SCALE)

    @property
    def precision_label(self) -> str:
        return "fp32" if self.amp_dtype is None else str(self.amp_dtype).removeprefix("torch.")

    def suggested_batch_size(self) -> int:
        """Images per forward pass: 32 on CPU; on CUDA sized to half the free memory (estimate)."""
        if self.device.type != "cuda":
            return 32
        free, _total = torch.cuda.mem_get_info(self.device)
        vision = OpenClipArchitecture.model_validate(self.model_cfg).vision_cfg
        side = vision.image_size if isinstance(vision.image_size, int) else self.preprocess.image_size
        tokens = (side // vision.patch_size) ** 2 + 1
        width = vision.width
        per_image = tokens * width * 2 * 24 + tokens * tokens * 2 * 16  # activations + attention, bytes
        fits = int(free * 0.5 // per_image)
        return max(8, min(1024, 1 << max(3, fits.bit_length() - 1)))

    @torch.inference_mode()
    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        """(batch, 3, H, W) → (batch, dim) unit vectors; chunks and halves the chunk on CUDA OOM."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._chunked(self._encode_pixels, pixels)

    def _encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        if self.image_session is not None:
            return l2_normalise(torch.from_numpy(self.image_session.run(pixels.float().contiguous().numpy())))
        pixels = pixels.to(self.device, non_blocking=True)
        with autocast(self.device, self.amp_dtype):
            features = self.model.encode_image(pixels)  # (b, dim)
        return l2_normalise(features)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self.tokenizer(list(texts))  # (n, context_length)
        return self._chunked(self._encode_tokens, tokens, limit=batch_size)

    def _encode_tokens(self, tokens: torch.Tensor) -> np.ndarray:
        if self.text_session is not None:
            return l2_normalise(
                torch.from_numpy(self.text_session.run(tokens.cpu().numpy().astype(np.int64)))
            )
        with autocast(self.device, self.amp_dtype):
            features = self.model.encode_text(tokens.to(self.device))  # (b, dim)
        return l2_normalise(features)

    def _chunked(
        self, run: Callable[[torch.Tensor], np.ndarray], batch: torch.Tensor, limit: int | None = None
    ) -> np.ndarray:
        size = self.max_batch if self.device.type == "cuda" else len(batch)
        size = max(1, min(size, limit) if limit else size)
        chunks, start = [], 0
        while start < len(batch):
            try:
                chunks.append(run(batch[start : start + size]))
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise
                size = max(1, size // 2)
                self.max_batch = size
                torch.cuda.empty_cache()
                log.warning("CUDA out of memory; encoding %d at a time from now on", size)
                continue
            start += size
        return np.concatenate(chunks)


def build_clip_encoder(
    config: ClipConfig,
    source: Checkpoint | str | Path | None,
    device: torch.device,
    search_dirs: Sequence[Path] = (),
) -> ClipEncoder:
    """A clip encoder from a registered config and where its weights are (see models/clip/weights.py).

    source: a loaded photosearch checkpoint, an explicit location (open_clip weights file,
    photosearch checkpoint file, `local-dir:` folder), or None to search the usual places.
    search_dirs: checkpoint folders, searched in order for weights and Hugging Face text-tower files.
    """
    if isinstance(source, Checkpoint):
        return _from_checkpoint(source, device, search_dirs)
    if source is not None:
        path = Path(str(source)).expanduser()
        if parse_local_dir(source) is None and _is_photosearch_checkpoint(path):
            return _from_checkpoint(load_checkpoint(path), device, search_dirs)
        folder = parse_local_dir(source)
        weights = read_local_dir(folder) if folder is not None else read_weights_file(path)
    else:
        weights = locate_weights(config, search_dirs)
        if weights.source == "file" and _is_photosearch_checkpoint(weights.path):
            return _from_checkpoint(load_checkpoint(weights.path), device, search_dirs)
    return _from_open_clip_weights(config, weights, device, search_dirs)


def local_dir_config(location: str) -> ClipConfig:
    """A clip config for `--model local-dir:/folder`, which needs no registered config."""
    folder = parse_local_dir(location)
    if folder is None:
        raise ValueError(f"not a local-dir location: {location!r}")
    return ClipConfig(family="clip", name=f"clip-{folder.name}")


def _is_photosearch_checkpoint(path: Path) -> bool:
    if path.suffix != ".safetensors" or not path.is_file():
        return False
    try:
        read_checkpoint_config(path)
    except CheckpointError:
        return False
    return True


def _from_open_clip_weights(
    config: ClipConfig, weights: ClipWeights, device: torch.device, search_dirs: Sequence[Path]
) -> ClipEncoder:
    model_cfg = weights.model_cfg if weights.model_cfg is not None else architecture_config(config)
    text_dir = _text_dir(model_cfg, weights.folder, search_dirs)
    model = instantiate(model_cfg, text_dir)
    try:
        open_clip.load_checkpoint(model, str(weights.path), strict=True, weights_only=True)
    except RuntimeError as exc:
        raise ClipWeightsMismatchError(
            f"weights {weights.path} do not fit architecture {config.architecture or 'model_cfg'} "
            f"of {config.name!r}: {str(exc)[:500]}"
        ) from exc
    log.info("clip model %s: weights from %s (%s)", config.name, weights.path, weights.source)
    return ClipEncoder(
        config.name or weights.path.stem,
        model,
        build_tokenizer(model_cfg, text_dir),
        model_cfg=model_cfg,
        preprocess_cfg=open_clip_preprocess(config, model_cfg, weights.preprocess_cfg),
        digest=weights.digest,
        device=device,
        precision=config.precision,
        architecture=config.architecture,
    )


def _from_checkpoint(
    checkpoint: Checkpoint, device: torch.device, search_dirs: Sequence[Path]
) -> ClipEncoder:
    """A photosearch checkpoint (e.g. from `photosearch finetune`): config + weights in one file."""
    config = checkpoint.config
    if not isinstance(config, ClipConfig):
        raise ClipConfigError(
            f"{checkpoint.path} is a {config.family!r} checkpoint, not a clip one: "
            f"pass it as the model itself (--model {checkpoint.path}) instead of as clip weights"
        )
    model_cfg = architecture_config(config)
    text_dir = _text_dir(model_cfg, None, search_dirs)
    model = instantiate(model_cfg, text_dir)
    missing, unexpected = model.load_state_dict(checkpoint.state_dict, strict=False)
    if missing or unexpected:
        raise ClipWeightsMismatchError(
            f"checkpoint {checkpoint.path} does not fit its own model_cfg: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return ClipEncoder(
        config.name or checkpoint.path.stem,
        model,
        build_tokenizer(model_cfg, text_dir),
        model_cfg=model_cfg,
        preprocess_cfg=dict(config.preprocess_cfg or {}),
        digest=checkpoint.digest,
        device=device,
        precision=config.precision,
        architecture=config.architecture,
    )


def random_clip_encoder(
    config: ClipConfig, device: torch.device, seed: int = 0, search_dirs: Sequence[Path] = ()
) -> ClipEncoder:
    """Random weights for an architecture (speed measurements, tests): never for search."""
    torch.manual_seed(seed)
    model_cfg = architecture_config(config)
    text_dir = _text_dir(model_cfg, None, search_dirs)
    return ClipEncoder(
        f"{config.name or 'clip'}-random",
        instantiate(model_cfg, text_dir),
        build_tokenizer(model_cfg, text_dir),
        model_cfg=model_cfg,
        preprocess_cfg=open_clip_preprocess(config, model_cfg),
        digest=f"random{seed:058d}",
        device=device,
        precision=config.precision,
        architecture=config.architecture,
    )


def _text_dir(model_cfg: dict[str, Any], local_dir: Path | None, search_dirs: Sequence[Path]) -> Path | None:
    name = hf_text_name(model_cfg)
    return locate_hf_text_dir(name, local_dir, search_dirs) if name else None
