"""Static int8 for the image tower: activation ranges measured once on photos, kept beside the checkpoint.

ONNX Runtime's static (QDQ) quantization runs the image tower's convolutions in int8, which dynamic
quantization cannot (it only covers matrix products, and EfficientNet is convolutions). It needs the
range of every activation. `calibrate` measures them by running the fp32 image graph over a hundred or
so photos, in the views the encoder feeds it (each test-time resolution of the `best` preset, mirrored),
and writes them to `<checkpoint>.int8.json` with the checkpoint's sha256. Quantizing on first use then
needs no photos, and ranges measured for other weights are refused, never applied.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder import Encoder, serving_kept
from models.errors import InvalidInputError
from models.onnx_export import QuantizerNotes, write_atomically

log = logging.getLogger(__name__)

CALIBRATION_SUFFIX = ".int8.json"
CALIBRATION_VERSION = 1
DEFAULT_CALIBRATION_PHOTOS = 128
# photos per calibration run (each run yields only per-tensor minima and maxima: little memory)
VIEWS_PER_RUN = 8


class CalibrationError(InvalidInputError):
    """No usable activation ranges for a static int8 image tower."""


@dataclass(frozen=True)
class Calibration:
    path: Path
    checkpoint_sha256: str
    photos: int
    ranges: dict[str, Any]  # onnxruntime's calibration cache (TensorsData as JSON)
    # whether a CPU that needs 7-bit weights (int8_saturates) serves int8 by default: measured against
    # the default-way rule (models/joint/config.py) with 7-bit weights; None: not measured, served as a
    # CPU with exact int8 products serves it
    seven_bit_by_default: bool | None = None

    @property
    def digest(self) -> str:
        """Names the int8 file made from these ranges, so new ranges never meet an old file."""
        return hashlib.sha256(json.dumps(self.ranges, sort_keys=True).encode()).hexdigest()

    def file_digest(self, reduce_range: bool) -> str:
        """Names the int8 file made from these ranges with full-range or 7-bit weights."""
        return self.digest if not reduce_range else hashlib.sha256(f"{self.digest}:7bit".encode()).hexdigest()


def int8_saturates() -> bool:
    """Whether this CPU needs 7-bit int8 weights. On x86-64 without VNNI (AVX2, AVX-512 without VNNI)
    ONNX Runtime multiplies uint8 activations by int8 weights with VPMADDUBSW, whose 16-bit sums of two
    products saturate with full-range weights: an EfficientNet's vectors then drift far from fp32 (mean
    cosine 0.94 against 0.99). 7-bit weights (onnxruntime's reduce_range) keep those sums in range. With
    VNNI, and on ARM, products accumulate in 32 bits and full-range weights are exact."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False
    flags = _cpu_flags()
    if flags is None:
        return True  # cannot tell: 7-bit weights are safe on every CPU
    return re.search(r"\b(avx512_vnni|avx_vnni)\b", flags) is None


def _cpu_flags() -> str | None:
    """The CPU's feature flags as Linux lists them (None elsewhere)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return None


def calibration_path(encoder: Encoder) -> Path | None:
    """`<checkpoint stem>.int8.json` beside the checkpoint; None for weights without a checkpoint file."""
    checkpoint = encoder.checkpoint_path
    return None if checkpoint is None else checkpoint.with_name(checkpoint.stem + CALIBRATION_SUFFIX)


def calibrate_command(encoder: Encoder) -> str:
    return f"photosearch calibrate-int8 PHOTOS --checkpoint {encoder.checkpoint_path or 'CHECKPOINT'}"


def read_calibration(encoder: Encoder) -> Calibration:
    """The ranges measured for exactly these weights, or CalibrationError saying how to measure them."""
    path = calibration_path(encoder)
    if path is None or not path.is_file():
        raise CalibrationError(
            f"no int8 calibration for {encoder.name} (looked for {path}): measure one with "
            f"`{calibrate_command(encoder)}`, or set PHOTOSEARCH_INFERENCE__QUANTIZE=none"
        )
    try:
        data = json.loads(path.read_text())
        sha, photos, ranges = data["checkpoint_sha256"], int(data["photos"]), data["ranges"]
        seven_bit = data.get("seven_bit_by_default")
        if seven_bit is not None and not isinstance(seven_bit, bool):
            raise ValueError(f"seven_bit_by_default must be true, false or absent, not {seven_bit!r}")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CalibrationError(f"int8 calibration {path} is unreadable ({exc}): measure it again") from exc
    if sha != encoder.checkpoint_digest:
        raise CalibrationError(
            f"int8 calibration {path} was measured for other weights (sha256 {str(sha)[:12]}, the "
            f"checkpoint is {encoder.checkpoint_digest[:12]}): measure it again with "
            f"`{calibrate_command(encoder)}`"
        )
    return Calibration(path, sha, photos, ranges, seven_bit)


def calibrate(
    encoder: Encoder, photos: Sequence[Path], image_graph: Path, seven_bit_by_default: bool | None = None
) -> Path:
    """Measure activation ranges of the fp32 image graph (`image_graph`, this encoder's export) over
    `photos` and write them beside the checkpoint, with whether CPUs that need 7-bit weights serve int8
    by default (None: not measured). → the calibration file."""
    from onnxruntime.quantization import CalibrationMethod, create_calibrator
    from onnxruntime.quantization.calibrate import save_tensors_data

    target = calibration_path(encoder)
    if target is None:
        raise CalibrationError(f"{encoder.name} has no checkpoint file to keep a calibration beside")
    if not photos:
        raise CalibrationError("no photos to calibrate on")
    with tempfile.TemporaryDirectory(prefix="photosearch-calibrate-") as tmp:
        prepared = prepare(image_graph, Path(tmp) / "prepared.onnx")
        calibrator = create_calibrator(
            prepared,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        calibrator.collect_data(_ViewReader(_views(encoder, photos)))
        save_tensors_data(calibrator.compute_data(), Path(tmp) / "ranges.json")
        ranges = json.loads((Path(tmp) / "ranges.json").read_text())
    payload = {
        "version": CALIBRATION_VERSION,
        "checkpoint_sha256": encoder.checkpoint_digest,
        "photos": len(photos),
        "ranges": ranges,
    }
    if seven_bit_by_default is not None:
        payload["seven_bit_by_default"] = seven_bit_by_default
    text = json.dumps(payload, sort_keys=True) + "\n"
    write_atomically(target, lambda tmp: tmp.write_text(text), checksum=False)
    log.debug("int8 calibration of %s over %d photos written to %s", encoder.name, len(photos), target)
    return target


def quantize_static_int8(
    source: Path, path: Path, calibration: Calibration, reduce_range: bool = False
) -> Path:
    """The fp32 image graph → int8 convolutions and matrix products (QDQ, per-channel weights), with
    the stored activation ranges (atomically); 7-bit weights with `reduce_range` (`int8_saturates`)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    def produce(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="photosearch-quantize-") as work:
            prepared = prepare(source, Path(work) / "prepared.onnx")
            ranges = Path(work) / "ranges.json"
            ranges.write_text(json.dumps(calibration.ranges))
            quiet = QuantizerNotes()
            logging.getLogger().addFilter(quiet)
            try:
                quantize_static(
                    str(prepared),
                    str(tmp),
                    None,
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    reduce_range=reduce_range,
                    calibration_cache_path=str(ranges),
                )
            except (KeyError, ValueError) as exc:  # ranges of another graph: tensors missing or foreign
                raise CalibrationError(
                    f"int8 calibration {calibration.path} does not fit this export of the image tower "
                    f"({type(exc).__name__}: {exc}): measure it again"
                ) from exc
            finally:
                logging.getLogger().removeFilter(quiet)

    log.info("quantizing %s to static int8%s at %s", source.name, " (7-bit weights)" * reduce_range, path)
    return write_atomically(path, produce)


def prepare(source: Path, target: Path) -> str:
    """onnxruntime's pre-processing (shape inference, graph optimisation) that both calibration and
    quantization start from, so that tensor names agree between them."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(target))
    except (AssertionError, RuntimeError, ValueError):  # symbolic shapes fail on some ViT reshapes
        quant_pre_process(str(source), str(target), skip_symbolic_shape=True)
    return str(target)


def calibration_photos(photos: Sequence[Path], count: int) -> list[Path]:
    """`count` photos spread evenly over a sorted list (all of them when fewer)."""
    ordered = sorted(photos)
    if len(ordered) <= count:
        return ordered
    step = len(ordered) / count
    return [ordered[int(i * step)] for i in range(count)]


def _views(encoder: Encoder, photos: Sequence[Path]) -> Iterator[np.ndarray]:
    """(VIEWS_PER_RUN, 3, H, W) float32 arrays: every view the tower sees of each photo at `best`."""
    from models.loading import iterate_photo_batches

    with serving_kept(encoder):
        if hasattr(encoder, "apply_preset"):
            encoder.apply_preset("best")
        views_of = getattr(encoder, "image_views", lambda pixels: [pixels])
        for batch in iterate_photo_batches(list(photos), encoder.preprocess, batch_size=VIEWS_PER_RUN):
            if batch.failures:
                raise CalibrationError(f"calibration photo failed to load: {batch.failures[0][1]}")
            for view in views_of(batch.pixels):
                yield view.contiguous().numpy().astype(np.float32)


class _ViewReader:
    """onnxruntime's CalibrationDataReader over the views."""

    def __init__(self, views: Iterator[np.ndarray]) -> None:
        self.views = views

    def get_next(self) -> dict[str, np.ndarray] | None:
        view = next(self.views, None)
        return None if view is None else {"pixels": view}

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self.get_next, None)
