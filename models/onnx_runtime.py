"""Running an encoder's towers on the CPU through ONNX Runtime.

`use_onnx(encoder, cache_dir)` exports the towers on first use (models/onnx_export.py), opens one
session per tower and hands them to the encoder, which then embeds through them; everything around
the graphs (tokenizer, test-time resizes and mirror images, normalisation) stays the encoder's.
A cached file whose checksum no longer matches, or which ONNX Runtime cannot open, is exported again
with a warning; a changed checkpoint gets a new folder, so a stale export is never used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np

from models.checkpoint import file_digest
from models.encoder import Encoder
from models.errors import InvalidInputError
from models.int8_calibration import (
    Calibration,
    CalibrationError,
    calibration_path,
    int8_saturates,
    quantize_static_int8,
    read_calibration,
)
from models.onnx_export import (
    TowerGraph,
    checksum_path,
    dynamic_int8_tag,
    export_folder,
    export_graph,
    quantize_int8,
    tower_graphs,
)
from models.pretrained import user_cache_dir

log = logging.getLogger(__name__)

# none: fp32 towers; image: the image tower's convolutions in int8, with activation ranges measured
# beside the checkpoint (models/int8_calibration.py); text: the text tower's matrix products in int8
# (per-channel weights; the wide-input ones in 8-bit blocks: models/onnx_export.quantize_int8); all: both;
# auto: image when the checkpoint has a calibration, else none
QuantizeName = Literal["auto", "none", "image", "text", "all"]
QUANTIZE_CHOICES: tuple[QuantizeName, ...] = ("auto", "none", "image", "text", "all")
# Encoder.key suffixes: int8 vectors differ from fp32 ones by more than rounding, so they never share an index
QUANTIZE_KEYS = {"none": "", "image": "+int8image", "text": "+int8text", "all": "+int8all"}


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/photosearch/onnx (~/.cache/...): shared by every data folder of the user,
    which is safe because exports are keyed by the checkpoint's bytes."""
    return user_cache_dir() / "onnx"


def session_options(threads: int | None = None, spin: bool = True) -> object:
    """Intra-op threads = the cores this process may use (or `threads`), all graph optimisations, one
    inter-op thread. spin: idle threads busy-wait for the next run (a query answers ~1 ms sooner); off
    where other processes need the cores (the indexer's decoding workers)."""
    import onnxruntime as ort

    from models.runtime import usable_cores

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the optimiser's notes are not the user's business
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


@dataclass
class TowerSession:
    """One exported tower: its session and the names of its inputs, in the graph's order. A lazy one
    (session None, `opener` set) exports and opens its file on its first run: the indexer's text tower,
    which embeds no caption unless the run also embeds the caption bank."""

    path: Path
    session: object | None  # onnxruntime.InferenceSession
    inputs: list[str] = field(default_factory=list)
    opener: Callable[[], TowerSession] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def run(self, *arrays: np.ndarray) -> np.ndarray:
        feeds = dict(zip(self.opened().inputs, arrays, strict=True))
        (vectors,) = self.session.run(["vectors"], feeds)  # type: ignore[union-attr]
        return np.asarray(vectors, dtype=np.float32)

    def opened(self) -> TowerSession:
        """This tower with its session open (a lazy one exports and opens its file now)."""
        with self._lock:
            if self.session is None:
                assert self.opener is not None, "a tower session without a session opens lazily"
                opened = self.opener()
                self.path, self.inputs, self.session = opened.path, opened.inputs, opened.session
        return self


class OnnxTowers:
    """What an encoder needs to run its towers through ONNX Runtime: set by use_onnx, None meanwhile."""

    image_session: TowerSession | None = None
    text_session: TowerSession | None = None
    quantize: str = "none"

    def use_sessions(self, image: TowerSession | None, text: TowerSession | None, quantize: str) -> None:
        """Run the towers through these sessions (None: that tower stays on PyTorch)."""
        self.image_session, self.text_session, self.quantize = image, text, quantize

    @property
    def runtime(self) -> str:
        return "onnx" if self.image_session is not None else "torch"


def _intact(path: Path) -> bool:
    checksum = checksum_path(path)
    if not path.is_file() or not checksum.is_file():
        return False
    return checksum.read_text().strip() == file_digest(path)


def _open(path: Path, threads: int | None, spin: bool = True) -> TowerSession:
    import onnxruntime as ort

    session = ort.InferenceSession(
        str(path), session_options(threads, spin), providers=["CPUExecutionProvider"]
    )
    return TowerSession(path, session, [i.name for i in session.get_inputs()])


def open_tower(
    graph: TowerGraph,
    folder: Path,
    quantized: bool,
    threads: int | None = None,
    calibration: Calibration | None = None,
    spin: bool = True,
    lazy: bool = False,
) -> TowerSession:
    """The tower's session, exported (and quantized) first when the cache lacks an intact file.
    quantized: int8, statically with `calibration`'s activation ranges when given, else dynamically.
    lazy: all that waits for the tower's first run."""
    if lazy:
        opener = partial(open_tower, graph, folder, quantized, threads, calibration, spin)
        return TowerSession(tower_file(graph, folder, quantized, calibration), None, opener=opener)
    plain = folder / f"{graph.name}.onnx"
    target = tower_file(graph, folder, quantized, calibration)
    reduce_range = quantized and int8_saturates()
    if _intact(target):
        try:
            return _open(target, threads, spin)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            log.warning("cached ONNX file %s cannot be opened (%s): exporting it again", target, exc)
    elif target.exists():
        log.warning("cached ONNX file %s is damaged (checksum mismatch): exporting it again", target)
    exported(graph, folder)
    if calibration is not None and quantized:
        quantize_static_int8(plain, target, calibration, reduce_range)
    elif quantized:
        quantize_int8(plain, target, reduce_range)
    return _open(target, threads, spin)


def tower_file(graph: TowerGraph, folder: Path, quantized: bool, calibration: Calibration | None) -> Path:
    """Where the tower's (int8) ONNX file is cached: its name says how it was quantized."""
    if not quantized:
        return folder / f"{graph.name}.onnx"
    # 7-bit weights where this CPU's int8 products would saturate (no VNNI), static or dynamic alike;
    # fp32 opens never ask
    reduce_range = int8_saturates()
    tag = calibration.file_digest(reduce_range)[:12] if calibration else dynamic_int8_tag(reduce_range)
    return folder / f"{graph.name}-int8-{tag}.onnx"


def exported(graph: TowerGraph, folder: Path) -> Path:
    """The tower's fp32 ONNX file in `folder`, exported first unless an intact one is there."""
    plain = folder / f"{graph.name}.onnx"
    if not _intact(plain):
        export_graph(graph, plain)
    return plain


def resolve_quantize(encoder: Encoder, quantize: QuantizeName) -> tuple[QuantizeName, Calibration | None]:
    """(what is quantized, the image tower's ranges when it is). auto: the image tower when the
    checkpoint has a calibration that fits it and its test_time does not serve fp32 by default
    (int8_by_default false), nor its calibration on a CPU that needs 7-bit weights (seven_bit_by_default
    false); a calibration measured for other weights is reported and skipped; and the text tower too
    when its test_time says so (text_int8_by_default) on a CPU whose int8 products do not saturate;
    image or all without one: CalibrationError saying how to measure one."""
    if quantize in ("none", "text"):
        return quantize, None
    if quantize != "auto":
        return quantize, read_calibration(encoder)
    image, calibration = _auto_image(encoder)
    if not encoder.text_int8_by_default:
        return image, calibration
    if int8_saturates():
        log.info(
            "%s: this CPU lacks VNNI, where the int8 text tower its test_time asks for was not measured "
            "within the default way's rule: embedding text in fp32 (PHOTOSEARCH_INFERENCE__QUANTIZE=all "
            "or text takes it all the same)",
            encoder.name,
        )
        return image, calibration
    return ("all" if image == "image" else "text"), calibration


def _auto_image(encoder: Encoder) -> tuple[QuantizeName, Calibration | None]:
    """quantize auto's choice for the image tower: ("image", its ranges) or ("none", None)."""
    if not encoder.int8_by_default:
        return "none", None  # the checkpoint serves fp32 by default (its test_time says why)
    path = calibration_path(encoder)
    if path is None or not path.is_file():
        return "none", None
    try:
        calibration = read_calibration(encoder)
    except CalibrationError as exc:
        log.warning("%s; embedding photos in fp32", exc)
        return "none", None
    if calibration.seven_bit_by_default is False and int8_saturates():
        log.info(
            "%s: this CPU lacks VNNI, so the int8 image tower would have 7-bit weights, which were measured "
            "outside the default way's rule for these weights: embedding photos in fp32 "
            "(PHOTOSEARCH_INFERENCE__QUANTIZE=image takes int8 all the same)",
            encoder.name,
        )
        return "none", None
    return "image", calibration


def use_onnx(
    encoder: Encoder,
    cache_dir: Path | None = None,
    quantize: QuantizeName = "none",
    threads: int | None = None,
    spin: bool = True,
    lazy_text: bool = False,
) -> Encoder:
    """Switch `encoder` (on the CPU) to ONNX Runtime towers, exporting them on first use (the text
    tower on its first caption with lazy_text)."""
    if quantize not in QUANTIZE_CHOICES:
        raise InvalidInputError(f"unknown quantize {quantize!r}: use one of {list(QUANTIZE_CHOICES)}")
    if encoder.device.type != "cpu":
        raise InvalidInputError(f"ONNX Runtime runs the towers on the CPU here, not on {encoder.device}")
    if not isinstance(encoder, OnnxTowers):
        raise InvalidInputError(f"the {encoder.family} family has no ONNX export: use the torch runtime")
    quantize, calibration = resolve_quantize(encoder, quantize)
    folder = export_folder(cache_dir or default_cache_dir(), encoder)
    sessions = {}
    for graph in tower_graphs(encoder):
        if graph.name == "image":
            quantized = quantize in ("image", "all")
            sessions["image"] = open_tower(graph, folder, quantized, threads, calibration, spin)
        else:
            quantized = quantize in ("text", "all")
            sessions[graph.name] = open_tower(graph, folder, quantized, threads, spin=spin, lazy=lazy_text)
    encoder.use_sessions(sessions.get("image"), sessions.get("text"), quantize)
    return encoder
