"""Epoch bookkeeping for both trainers: best epoch, early stopping on val R@sum, and after every epoch
a resume file `<out>.resume.pt` (the model's trainable state, optimizer, scheduler, RNG states, history,
best epoch) so `--resume` carries on from the last finished epoch exactly as if never stopped."""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger(__name__)


@dataclass
class EpochLog:
    epoch: int
    loss: float
    val_rsum: float
    seconds: float


def resume_path(out: Path) -> Path:
    return Path(out).with_suffix(".resume.pt")


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        state["generator"] = generator.get_state()
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if generator is not None and "generator" in state:
        generator.set_state(state["generator"])


def load_resume(path: Path) -> dict[str, Any]:
    """A resume file, or the checkpoint it sits beside."""
    path = Path(path)
    if path.suffix == ".safetensors":
        path = resume_path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no resume file at {path}: pass the `.resume.pt` written beside a checkpoint during training"
        )
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)  # our own file
    return state


def save_resume(
    out: Path,
    *,
    config: dict[str, Any],
    model: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    epoch: int,
    history: list[Any],
    best: dict[str, Any],
    opts: Any,
    finished: bool,
    generator: torch.Generator | None = None,
) -> None:
    """Write the resume file atomically (a kill mid-write leaves the previous epoch's file)."""
    path = resume_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "epoch": epoch,
        "config": config,
        "finished": finished,
        "model": {k: v.detach().cpu() for k, v in model.checkpoint_state().items()},  # type: ignore[operator]
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": [asdict(h) for h in history],
        "best": best,
        "rng": rng_state(generator),
        "options": {k: str(v) for k, v in asdict(opts).items()},
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


class EpochKeeper:
    """Keeps the best epoch's state, decides early stopping and writes the resume file each epoch."""

    def __init__(
        self,
        out: Path,
        config: dict[str, Any],
        model: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        opts: Any,
        *,
        saved: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.out, self.config, self.model, self.opts = out, config, model, opts
        self.optimizer, self.scheduler, self.generator = optimizer, scheduler, generator
        self.history: list[EpochLog] = []
        self.best: dict[str, Any] | None = None
        self.first_epoch, self.stopped = 1, False
        if saved:
            model.load_checkpoint_state(saved["model"])  # type: ignore[operator]
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            self.history = [EpochLog(**h) for h in saved["history"]]
            self.best, self.first_epoch = saved["best"], int(saved["epoch"]) + 1
            self.stopped = bool(saved.get("finished"))
            set_rng_state(saved["rng"], generator)
            log.info("resuming %s after epoch %d", resume_path(out), saved["epoch"])

    def end_epoch(self, epoch: int, rsum: float, report: dict[str, Any]) -> bool:
        """Record the epoch's val figures; True when training should stop early."""
        if self.best is None or rsum > self.best["rsum"]:
            state = {k: v.detach().cpu().clone() for k, v in self.model.checkpoint_state().items()}  # type: ignore[operator]
            self.best = {"rsum": rsum, "epoch": epoch, "state": state, "report": report}
        self.stopped = epoch - self.best["epoch"] >= self.opts.patience
        save_resume(
            self.out,
            config=self.config,
            model=self.model,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            epoch=epoch,
            history=self.history,
            best=self.best,
            opts=self.opts,
            finished=self.stopped,
            generator=self.generator,
        )
        if self.stopped:
            log.info("early stop at epoch %d (best %d)", epoch, self.best["epoch"])
        return self.stopped

    def final_best(self) -> dict[str, Any]:
        if self.best is None:
            raise ValueError("no epoch ran: epochs must be at least 1 (or the resume file has finished)")
        return self.best
