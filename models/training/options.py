"""What a joint training run takes (TrainOptions), writes (save_trained) and gives back (TrainResult),
shared by both trainers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import save_checkpoint
from models.joint.config import JointConfig, TrainConfig
from models.training.calibrate import calibrate_after_training, write_training_captions
from models.training.data import TrainingData, as_sets
from models.training.epochs import EpochLog
from models.training.evaluate import ValReport


def _config_default(name: str) -> Any:
    """A training default as the model config's "train" section defines it: one source for both."""
    return TrainConfig.model_fields[name].default


@dataclass
class TrainOptions:
    epochs: int = _config_default("epochs")
    batch_size: int = _config_default("batch_size")
    lr: float = _config_default("lr")
    weight_decay: float = _config_default("weight_decay")
    warmup_epochs: float = _config_default("warmup_epochs")
    patience: int = _config_default("patience")
    hard_negatives: float = _config_default("hard_negatives")
    token_dropout: float = _config_default("token_dropout")
    seed: int = 0
    loss: str = "infonce"
    margin: float = 0.2
    workers: int = 0
    device: str = "cpu"
    cache_dir: Path = Path("data/cache")
    init: Path | None = None  # start from this checkpoint's trained weights (same model config)
    init_text: Path | None = None  # start only the text side from this checkpoint (same text tower)
    init_image: Path | None = None  # start only the image side from this checkpoint (same image tower)
    crop_seed: int = 0  # which random crops the cached "crop" views are (another seed: fresh views)
    teachers: tuple[Path, ...] = ()  # trained checkpoints whose in-batch rankings the student learns
    distill: float = 0.0  # the teachers' share of the loss (the pairs' contrastive loss has the rest)

    @classmethod
    def from_config(cls, config: JointConfig, **overrides: Any) -> TrainOptions:
        """The config's "train" and loss settings, with the overrides that are not None on top."""
        values = config.train.model_dump(include=set(cls.__dataclass_fields__))
        values["loss"] = config.loss.type
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    report: ValReport
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0


def run_info(best_epoch: int, report: ValReport, data: TrainingData, opts: TrainOptions) -> dict[str, Any]:
    """The training facts a checkpoint carries in its info."""
    sets = as_sets(data)
    return {
        "best_epoch": best_epoch,
        "val": report.to_dict(),
        "data": str(sets[0].path)
        if len(sets) == 1
        else [{"path": str(s.path), "weight": s.weight} for s in sets],
        "options": {k: str(v) for k, v in asdict(opts).items()},
    }


def half_towers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Tuned pretrained-tower layers as float16 (half the checkpoint, no measurable change); the rest
    (heads, temperature, re-ranker) as they are."""
    return {
        k: v.half() if k.startswith(("image_tower.", "text_tower.")) and v.is_floating_point() else v
        for k, v in state.items()
    }


def save_trained(
    out: Path,
    config: JointConfig,
    state: dict[str, torch.Tensor],
    info: dict[str, Any],
    data: TrainingData,
    opts: TrainOptions,
    history: list[EpochLog],
) -> None:
    """Write the checkpoint, then give it what its config asks for when served (test-time settings, a
    query bank), the captions it was trained on as its caption bank, and its training curves beside it."""
    from models.training.plots import plot_training_curves  # matplotlib: only once a run has finished

    save_checkpoint(out, config=config, state_dict=state, info=info)
    calibrate_after_training(out, data, config, opts.device)
    write_training_captions(out, data)
    plot_training_curves(history, out.with_suffix(".png"), title=config.name or out.stem)
