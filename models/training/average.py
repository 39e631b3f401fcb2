"""Weight averaging: checkpoints of one joint model config, fine-tuned from a common start (successive
stages, or runs with other crops or seeds), averaged tensor by tensor into one checkpoint ("model
soup", Wortsman et al., 2022). The average costs nothing at query time: one model, one pass.

The averaged weights embed photos differently from each input, so the query bank is built again from
the training data (as `photosearch train` builds it) and the caption bank is written beside it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from models.errors import InvalidInputError
from models.joint.config import JointConfig, QueryBankConfig
from models.query_bank import split_bank_tensors, without_bank
from models.training.calibrate import calibrate_checkpoint, write_training_captions
from models.training.data import TrainingData

log = logging.getLogger(__name__)


def average_checkpoints(
    paths: Sequence[Path],
    out: Path,
    data: TrainingData,
    shares: Sequence[float] | None = None,
    device: str = "auto",
) -> Path:
    """Average `paths` (each with its share of the average; none given: equal) into `out`, then give
    it the first checkpoint's test-time settings, a query bank of the same size built from `data`'s
    train split, and the caption bank. The inputs are left as they are."""
    if len(paths) < 2:
        raise InvalidInputError(f"give at least two checkpoints to average, not {len(paths)}")
    resolved = {Path(p).resolve() for p in paths}
    if len(resolved) < len(paths):
        raise InvalidInputError("a checkpoint is named twice: give each once (--share weighs one more)")
    if Path(out).resolve() in resolved:
        raise InvalidInputError(f"--out must be another file than the checkpoints averaged: {out}")
    shares = list(shares) if shares else [1.0] * len(paths)
    if len(shares) != len(paths) or any(not s > 0 for s in shares):
        raise InvalidInputError(
            f"one share above 0 per checkpoint: {len(paths)} checkpoints, shares {shares}"
        )
    loaded = [load_checkpoint(Path(p)) for p in paths]
    config = _common_config(loaded)
    total = sum(shares)
    state = _average([split_bank_tensors(c.state_dict) for c in loaded], [s / total for s in shares], loaded)
    info: dict[str, Any] = {
        "averaged": [
            {"checkpoint": c.path.name, "sha256": c.digest, "share": s / total}
            for c, s in zip(loaded, shares, strict=True)
        ]
    }
    first = loaded[0].config
    assert isinstance(first, JointConfig)
    save_checkpoint(out, config=config, state_dict=state, info=info)
    bank = first.query_bank
    options = (
        None
        if bank is None
        else QueryBankConfig(photos=bank.photos, captions=bank.captions, k=bank.k, beta=bank.beta)
    )
    calibrate_checkpoint(out, data, test_time=config.test_time, bank_options=options, device=device)
    write_training_captions(out, data)
    log.info("averaged %d checkpoints into %s", len(loaded), out)
    return out


# what makes two joint checkpoints one model; names, training settings and test-time choices may differ
# (the first checkpoint's are kept)
ARCHITECTURE = ("family", "embed_dim", "image_tower", "text_tower", "head", "preprocess", "reranker")


def _common_config(loaded: Sequence[Checkpoint]) -> JointConfig:
    """The first checkpoint's joint config (its query bank aside), when all of them are one model."""
    configs = []
    for checkpoint in loaded:
        if not isinstance(checkpoint.config, JointConfig):
            raise InvalidInputError(
                f"{checkpoint.path} is a {checkpoint.config.family!r} checkpoint; averaging takes joint ones"
            )
        configs.append(without_bank(checkpoint.config))
    first = {k: configs[0].to_json().get(k) for k in ARCHITECTURE}
    for checkpoint, config in zip(loaded[1:], configs[1:], strict=True):
        if differs := [k for k in ARCHITECTURE if config.to_json().get(k) != first[k]]:
            raise InvalidInputError(
                f"{checkpoint.path} is another model than {loaded[0].path} (its config differs in "
                f"{', '.join(differs)}): only checkpoints of one model can be averaged"
            )
    return configs[0]


def _average(
    states: Sequence[dict[str, torch.Tensor]], shares: Sequence[float], loaded: Sequence[Checkpoint]
) -> dict[str, torch.Tensor]:
    """Tensor-by-tensor weighted mean of float tensors; any other tensor (a counter) must be equal."""
    keys = set(states[0])
    for state, checkpoint in zip(states[1:], loaded[1:], strict=True):
        if set(state) != keys:
            raise InvalidInputError(f"{checkpoint.path} holds other tensors than {loaded[0].path}")
    averaged = {}
    for key in sorted(keys):
        tensors = [state[key] for state in states]
        if any(t.shape != tensors[0].shape for t in tensors):
            raise InvalidInputError(f"tensor {key} has another shape in one of the checkpoints")
        if tensors[0].is_floating_point():
            mean = sum(float(s) * t.double() for s, t in zip(shares, tensors, strict=True))
            averaged[key] = torch.as_tensor(mean).to(tensors[0].dtype)
        elif all(torch.equal(t, tensors[0]) for t in tensors):
            averaged[key] = tensors[0]
        else:
            raise InvalidInputError(f"tensor {key} differs between the checkpoints and cannot be averaged")
    return averaged
