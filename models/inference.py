"""An encoder as the service and the commands run it: a registered model or checkpoint, on the
runtime (PyTorch or ONNX Runtime) and with the test-time preset the settings choose.

`create_encoder` (models/registry.py) builds the PyTorch model that training and CUDA use; this wraps
it with the serving choices, so every caller that embeds for an index or a query makes them alike."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from models.encoder import Encoder
from models.errors import InvalidInputError
from models.joint.config import PRESETS, PresetName
from models.onnx_runtime import QUANTIZE_CHOICES, QuantizeName, use_onnx
from models.registry import create_encoder
from models.runtime import RuntimeName, resolve_device, resolve_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingOptions:
    """runtime: auto (ONNX on CPU, PyTorch on CUDA), torch or onnx; preset: fast, balanced, best
    or None (the default, models/joint/config.py DEFAULT_PRESET); quantize: int8 ONNX towers (none,
    text, all); cache_dir: where ONNX exports are kept (None: ~/.cache/photosearch/onnx)."""

    runtime: RuntimeName = "auto"
    preset: PresetName | None = None
    quantize: QuantizeName = "none"
    cache_dir: Path | None = None
    threads: int | None = None

    def check(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise InvalidInputError(f"unknown preset {self.preset!r}: use one of {list(PRESETS)}")
        if self.quantize not in QUANTIZE_CHOICES:
            raise InvalidInputError(
                f"unknown quantize {self.quantize!r}: use one of {list(QUANTIZE_CHOICES)}"
            )


def serve_encoder(encoder: Encoder, options: ServingOptions) -> Encoder:
    """Apply the preset (joint family) and switch the towers to ONNX Runtime when the runtime says so."""
    options.check()
    if hasattr(encoder, "apply_preset"):
        encoder.apply_preset(options.preset)
    runtime = resolve_runtime(options.runtime, encoder.device)
    if options.quantize != "none" and runtime != "onnx":
        raise InvalidInputError(
            "int8 quantization runs through ONNX Runtime: set the runtime to onnx or auto (CPU)"
        )
    if runtime == "onnx":
        use_onnx(encoder, options.cache_dir, options.quantize, options.threads)
    log.debug("model %s on %s through %s", encoder.key, encoder.device, runtime)
    return encoder


def load_encoder(
    model: str,
    checkpoint: str | Path | None = None,
    device: str | torch.device = "auto",
    checkpoint_dirs: Sequence[Path] = (),
    options: ServingOptions = ServingOptions(),
) -> Encoder:
    """create_encoder, then serve_encoder: what the service, `index` and `query` embed with."""
    options.check()
    resolve_runtime(options.runtime, resolve_device(device))  # a wrong choice fails before the model loads
    return serve_encoder(create_encoder(model, checkpoint, device, checkpoint_dirs), options)
