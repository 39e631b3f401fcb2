"""What a joint training run takes (TrainOptions) and gives back (TrainResult), shared by both trainers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.joint.config import JointConfig
from models.training.evaluate import RetrievalReport
from models.training.resume import EpochLog


@dataclass
class TrainOptions:
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    patience: int = 6
    seed: int = 0
    loss: str = "infonce"
    margin: float = 0.2
    workers: int = 0
    device: str = "cpu"
    cache_dir: Path = Path("data/cache")
    init: Path | None = None  # start from this checkpoint's trained weights (same model config)
    crop_seed: int = 0  # which random crops the cached "crop" views are (another seed: fresh views)

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
    report: RetrievalReport
    history: list[EpochLog] = field(default_factory=list)
    seconds: float = 0.0
