"""Exporting an encoder's towers to ONNX, by code, from the loaded checkpoint.

Each tower (image tower + projection head; text tower + head, the tokenizer staying outside the graph)
becomes one ONNX file with a dynamic batch axis; the image graph also takes any height and width, so
one file serves every test-time resolution. Files are cached in a folder named by a hash of the
checkpoint file's bytes, this code's export version and the opset: a changed checkpoint never meets
a stale export. Each file is written atomically (temp file, fsync, rename) with a sidecar holding its
sha256, so a file damaged later is noticed and exported again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.checkpoint import file_digest
from models.encoder import Encoder

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when a graph below changes: older exports are then never used
OPSET = 17


@dataclass
class TowerGraph:
    """What torch.onnx.export needs for one tower; `name` is its file stem ("image", "text")."""

    name: str
    module: nn.Module
    example: tuple[torch.Tensor, ...]
    inputs: list[str]
    dynamic_axes: dict[str, dict[int, str]]


class _Method(nn.Module):
    """One method of a model as a module to trace: `encode_image` (pixels → vectors) or `encode_text`."""

    def __init__(self, model: Any, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, *inputs: torch.Tensor) -> Any:
        return getattr(self.model, self.method)(*inputs)


class _SentenceEncoderText(nn.Module):
    """Token ids, mask and type ids (batch, tokens) → (batch, dim) unit vectors: the sentence encoder
    run as forward_frozen + forward_trainable do (embeddings, all layers, masked mean), then the head."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> Any:
        tower = self.model.text_tower
        hidden = tower.embed_tokens(input_ids, token_type_ids)
        hidden = tower._run_layers(hidden, attention_mask, tower._layers()[: tower.split])
        return self.model.embed_text_features(tower.forward_trainable(hidden, attention_mask))


def joint_graphs(encoder: Any) -> list[TowerGraph]:
    """The joint family's towers. A text tower other than a sentence encoder (the caption-vocabulary towers)
    tokenizes inside PyTorch and is not exported: it stays on PyTorch."""
    model = encoder.model
    side = encoder.preprocess.image_size
    image_axes = {"pixels": {0: "batch", 2: "height", 3: "width"}, "vectors": {0: "batch"}}
    graphs = [
        TowerGraph(
            "image", _Method(model, "encode_image"), (torch.zeros(2, 3, side, side),), ["pixels"], image_axes
        )
    ]
    if hasattr(model.text_tower, "_bert"):
        tokens = {k: v.cpu() for k, v in model.text_tower._tokens(["a photo", "two dogs on a beach"]).items()}
        names = ["input_ids", "attention_mask", "token_type_ids"]
        text_axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"vectors": {0: "batch"}}
        example = tuple(tokens.get(name, torch.zeros_like(tokens["input_ids"])) for name in names)
        graphs.append(TowerGraph("text", _SentenceEncoderText(model), example, names, text_axes))
    return graphs


def clip_graphs(encoder: Any) -> list[TowerGraph]:
    """The clip family's towers: open_clip's encode_image and encode_text (tokens from its tokenizer)."""
    side = encoder.preprocess.image_size
    tokens = encoder.tokenizer(["a photo", "two dogs on a beach"]).cpu()  # (2, context_length)
    return [
        TowerGraph(
            "image",
            _Method(encoder.model, "encode_image"),
            (torch.zeros(2, 3, side, side),),
            ["pixels"],
            {"pixels": {0: "batch"}, "vectors": {0: "batch"}},
        ),
        TowerGraph(
            "text",
            _Method(encoder.model, "encode_text"),
            (tokens,),
            ["tokens"],
            {"tokens": {0: "batch"}, "vectors": {0: "batch"}},
        ),
    ]


def tower_graphs(encoder: Encoder) -> list[TowerGraph]:
    return joint_graphs(encoder) if encoder.family == "joint" else clip_graphs(encoder)


def export_folder(cache_dir: Path, encoder: Encoder) -> Path:
    """Where this encoder's exports live: named by the checkpoint bytes, export version and opset."""
    fingerprint = (
        f"{encoder.checkpoint_digest}|export-{EXPORT_VERSION}|opset-{OPSET}|torch-{torch.__version__}"
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    return Path(cache_dir) / f"{encoder.name}-{digest}"


def checksum_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def write_atomically(path: Path, produce: Callable[[Path], object], checksum: bool = True) -> Path:
    """produce(temp path) writes the file; it is fsynced and renamed into place (with its checksum
    beside it unless `checksum` is off), so a reader sees a whole file or none, even with several
    processes writing at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        produce(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if not checksum:
            os.replace(tmp, path)
            return path
        sidecar = checksum_path(path)
        sidecar_tmp = sidecar.with_name(f".{sidecar.name}.tmp-{os.getpid()}")
        sidecar_tmp.write_text(file_digest(tmp) + "\n")
        os.replace(tmp, path)
        os.replace(sidecar_tmp, sidecar)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def export_graph(graph: TowerGraph, path: Path) -> Path:
    """One tower to `path` (atomically)."""

    def produce(tmp: Path) -> None:
        fastpath = torch.backends.mha.get_fastpath_enabled()
        # nn.MultiheadAttention's inference fast path (open_clip's towers) is one fused op ONNX lacks
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            _trace(graph, tmp)
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)

    log.info("exporting the %s tower to %s", graph.name, path)
    return write_atomically(path, produce)


def _trace(graph: TowerGraph, tmp: Path) -> None:
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            graph.module.eval(),
            graph.example,
            str(tmp),
            input_names=graph.inputs,
            output_names=["vectors"],
            dynamic_axes=graph.dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


# How `quantize_int8` quantizes, in the name of the file it writes: a file quantized another way (per
# tensor, or with every matrix dynamic as before) never meets this code under the same name.
DYNAMIC_INT8_TAG = "per-channel-wide-blocks"
# CPUs whose int8 products saturate: 7-bit weights, every matrix dynamic per channel
SEVEN_BIT_INT8_TAG = "per-channel-7bit"
# Rows of a wide-input matrix's weights quantized together, each block with its own scale (and the
# activations it multiplies, quantized on the fly per block of as many)
WIDE_INPUT_BLOCK = 32


def dynamic_int8_tag(reduce_range: bool) -> str:
    """The file-name tag of the text tower quantize_int8 writes with or without 7-bit weights."""
    return SEVEN_BIT_INT8_TAG if reduce_range else DYNAMIC_INT8_TAG


def wide_input_matrices(graph: Path) -> list[str]:
    """MatMul nodes whose constant weight has more input rows than output columns: a transformer's
    feed-forward down-projections (3,072 → 768 in MPNet), fed by GELU outputs whose few large values
    one scale per activation tensor cannot hold beside the many small ones."""
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    shapes = {tensor.name: tuple(tensor.dims) for tensor in model.graph.initializer}
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul"
        and len(shape := shapes.get(node.input[1], ())) == 2
        and shape[0] > shape[1]
    ]


def quantize_int8(source: Path, path: Path, reduce_range: bool = False) -> Path:
    """int8 weights for the matrix products of a text tower (onnxruntime.quantization). Each output
    channel has its own scale (one scale for a whole transformer weight matrix cost the sentence encoders
    most of their precision) and activations are quantized on the fly, one scale per tensor; the
    wide-input matrices (`wide_input_matrices`) instead get 8-bit weights and int8 products in blocks of
    `WIDE_INPUT_BLOCK` input rows, each with its own scales (MatMulNBits), which keeps MPNet's recall
    within half a point of fp32 where one activation scale for them lost 4 (benchmarks/MODELS.md).
    7-bit weights and every matrix dynamic with `reduce_range`, for CPUs whose int8 products would
    saturate (models/int8_calibration.int8_saturates)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def produce(tmp: Path) -> None:
        quiet = QuantizerNotes()
        logging.getLogger().addFilter(quiet)
        try:
            wide = [] if reduce_range else wide_input_matrices(source)
            quantize_dynamic(
                source,
                tmp,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Gemm"],
                per_channel=True,
                reduce_range=reduce_range,
                nodes_to_exclude=wide,
            )
            if wide:
                _blockwise_int8(tmp, wide)
        finally:
            logging.getLogger().removeFilter(quiet)

    log.info("quantizing %s to int8%s at %s", source.name, " (7-bit weights)" * reduce_range, path)
    return write_atomically(path, produce)


def matmul_nbits_quantizer() -> Any:
    """onnxruntime.quantization.matmul_nbits_quantizer, imported without what its import does to the
    process: a logging.basicConfig at INFO, which would print every library's notes where the root logger
    had no handler yet."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from onnxruntime.quantization import matmul_nbits_quantizer as nbits
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return nbits


def _blockwise_int8(path: Path, nodes: list[str]) -> None:
    """`nodes` (MatMuls with constant weights) of the graph at `path` → MatMulNBits with 8-bit symmetric
    weights in blocks of WIDE_INPUT_BLOCK rows and int8 products (accuracy level 4), in place."""
    import onnx

    nbits = matmul_nbits_quantizer()
    notes = logging.getLogger(nbits.__name__)  # a line per node of the graph at INFO
    level = notes.level
    notes.setLevel(logging.WARNING)
    try:
        settings = {"bits": 8, "block_size": WIDE_INPUT_BLOCK, "is_symmetric": True, "accuracy_level": 4}
        quantizer = nbits.MatMulNBitsQuantizer(
            onnx.load(str(path)),
            nodes_to_include=nodes,
            op_types_to_quantize=("MatMul",),
            algo_config=nbits.DefaultWeightOnlyQuantConfig(op_types_to_quantize=("MatMul",), **settings),
            **settings,
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(path), use_external_data_format=False)
    finally:
        notes.setLevel(level)


class QuantizerNotes(logging.Filter):
    """onnxruntime's quantizer notes on the root logger: that a 1-d weight (a LayerNorm's) has no channel
    axis (it is quantized per tensor, as it should be), and a general hint to pre-process the graph;
    not the user's business."""

    NOTES = ("Axis ", "Please consider to run pre-processing")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.NOTES)
