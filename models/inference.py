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

from models.encoder import Encoder, serving_kept
from models.errors import InvalidInputError
from models.joint.config import PRESETS, PresetName, check_preset
from models.onnx_runtime import QUANTIZE_CHOICES, QuantizeName, use_onnx
from models.registry import create_encoder
from models.runtime import RuntimeName, resolve_device, resolve_runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingOptions:
    """runtime: auto (ONNX on CPU, PyTorch on CUDA), torch or onnx; preset: fast, balanced, best
    or None (the default, models/joint/config.py DEFAULT_PRESET); quantize: int8 ONNX towers (auto,
    none, image, text, all: models/onnx_runtime.py); cache_dir: where ONNX exports are kept (None:
    ~/.cache/photosearch/onnx)."""

    runtime: RuntimeName = "auto"
    preset: PresetName | None = None
    quantize: QuantizeName = "auto"
    cache_dir: Path | None = None
    threads: int | None = None
    spin: bool = True  # ONNX Runtime's idle threads busy-wait: quicker queries; off for the indexer
    # the ONNX text tower is exported and opened on its first caption, not at load: the indexer embeds
    # photos (and captions only when it embeds the caption bank); a server opens it at start-up
    lazy_text: bool = False

    @property
    def follows_store(self) -> bool:
        """Preset and quantize left to their defaults: the store's way of embedding may choose them."""
        return self.preset is None and self.quantize == "auto"

    def check(self) -> None:
        check_preset(self.preset)
        if self.quantize not in QUANTIZE_CHOICES:
            raise InvalidInputError(
                f"unknown quantize {self.quantize!r}: use one of {list(QUANTIZE_CHOICES)}"
            )


def serve_encoder(encoder: Encoder, options: ServingOptions) -> Encoder:
    """Apply the preset (joint family) and switch the towers to ONNX Runtime when the runtime says so."""
    options.check()
    runtime = resolve_runtime(options.runtime, encoder.device)
    if options.quantize not in ("none", "auto") and runtime != "onnx":
        raise InvalidInputError(
            "int8 quantization runs through ONNX Runtime: set the runtime to onnx or auto (CPU)"
        )
    if runtime == "onnx":
        use_onnx(
            encoder, options.cache_dir, options.quantize, options.threads, options.spin, options.lazy_text
        )
    if hasattr(encoder, "apply_preset"):  # after the precision: the default preset depends on it
        encoder.apply_preset(options.preset)
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


def embedding_variants(encoder: Encoder) -> dict[str, tuple[PresetName | None, QuantizeName]]:
    """Every model key these weights take here → (preset, quantize) that embeds that way: each
    test-time preset (joint family) in fp32 and, when the image tower has int8 ranges, in int8."""
    from models.int8_calibration import calibration_path

    path = calibration_path(encoder)
    precisions: tuple[QuantizeName, ...] = ("none", "image") if path and path.is_file() else ("none",)
    presets: Sequence[PresetName | None] = PRESETS if hasattr(encoder, "apply_preset") else (None,)
    variants: dict[str, tuple[PresetName | None, QuantizeName]] = {}
    with serving_kept(encoder):
        for preset in presets:
            if preset is not None:
                encoder.apply_preset(preset)  # type: ignore[attr-defined]
            for quantize in precisions:
                encoder.quantize = quantize  # type: ignore[attr-defined]
                variants.setdefault(encoder.key, (preset, quantize))
    return variants


def follow_stored(encoder: Encoder, options: ServingOptions, stored: dict[str, int]) -> Encoder:
    """With the preset and quantize left to their defaults, embed as the store already does: when it
    holds photo vectors of these weights embedded another way (an earlier default, or a GPU indexer's
    fp32) and none the default way, switch to the way that embedded the most. So an upgrade or a
    server on other hardware never leaves a collection unsearchable or re-embeds it unasked.
    stored: photo vectors per model key."""
    if not options.follows_store or encoder.key in stored:
        return encoder
    variants = embedding_variants(encoder)
    found = sorted(((count, key) for key, count in stored.items() if key in variants), reverse=True)
    onnx = getattr(encoder, "runtime", "torch") == "onnx"
    found = [(count, key) for count, key in found if onnx or variants[key][1] == "none"]
    if not found:
        return encoder
    count, key = found[0]
    preset, quantize = variants[key]
    log.info(
        "the store holds %d photo vectors embedded as %s and none as %s: embedding that way (set the "
        "preset or quantize to choose)",
        count,
        key,
        encoder.key,
    )
    if onnx:
        use_onnx(encoder, options.cache_dir, quantize, options.threads, options.spin, options.lazy_text)
    if preset is not None:
        encoder.apply_preset(preset)  # type: ignore[attr-defined]
    return encoder
