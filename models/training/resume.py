"""Resuming the joint trainers: the epoch loop (models/training/epochs.py) writes after every epoch
a resume file `<out>.resume.pt` (the model's trainable state, optimizer, scheduler, RNG states, history,
best epoch) so `--resume` carries on from the last finished epoch exactly as if never stopped."""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from models.checkpoint import load_checkpoint
from models.errors import InvalidInputError
from models.joint.config import JointConfig
from models.joint.model import JointModel
from models.query_bank import split_bank_tensors
from models.training.epochs import EpochLog, EpochLoop
from models.training.evaluate import ValReport, report_from_dict

log = logging.getLogger(__name__)


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


def start_run(
    config: JointConfig, seed: int, resume: Path | None
) -> tuple[dict[str, Any] | None, JointConfig]:
    """Seed every RNG; when resuming, load the resume file and carry on with the config it saved.
    → (the saved run or None, the config to train)."""
    saved = load_resume(resume) if resume else None
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if saved is None or resume is None:
        return None, config
    return saved, JointConfig.parse(saved["config"], f"{resume} (the config it trains)")


def init_from_checkpoint(model: JointModel, path: Path) -> None:
    """Load a trained checkpoint's weights (heads, tuned tower layers) as the starting point of a run.
    Its query bank, if any, is not carried over: training writes a new one."""
    state = split_bank_tensors(load_checkpoint(path).state_dict)
    model.load_checkpoint_state(state)  # raises if the configs differ


TEXT_SIDE = ("text_tower.", "text_head.", "logit_scale")
IMAGE_SIDE = ("image_tower.", "image_head.")
Side = Literal["text", "image"]


def init_side_from_checkpoint(model: JointModel, path: Path, side: Side) -> None:
    """Start one side of the model from a trained checkpoint whose tower, head and embedding size on that
    side are this config's; the other side keeps its pretrained tower and a new head.

    side "text" (--init-text): the tuned text layers, the text head and the temperature, so a larger
    image tower learns into a caption space already trained. side "image" (--init-image): the tuned
    image blocks and the image head, so another text tower learns into a photo space already trained.
    A checkpoint whose side does not fit is an input error."""
    option = f"--init-{side}"
    checkpoint = load_checkpoint(path)
    theirs, ours = checkpoint.config, model.config
    if not isinstance(theirs, JointConfig):
        raise InvalidInputError(f"{option} {path}: a joint checkpoint is needed; it holds {theirs.family}")
    for part in (f"{side}_tower", "head", "embed_dim"):
        if getattr(theirs, part) != getattr(ours, part):
            raise InvalidInputError(
                f"{option} {path}: its {part} ({getattr(theirs, part)}) is not this config's "
                f"({getattr(ours, part)})"
            )
    prefixes = TEXT_SIDE if side == "text" else IMAGE_SIDE
    wanted = {k for k in model.checkpoint_state() if k.startswith(prefixes)}
    state = split_bank_tensors(checkpoint.state_dict)
    if missing := sorted(wanted - set(state)):
        raise InvalidInputError(f"{option} {path}: it lacks {missing[:5]}")
    model.load_state_dict({k: state[k] for k in wanted}, strict=False)
    other: Side = "image" if side == "text" else "text"
    log.info("%s side from %s: %d tensors; the %s side starts pretrained", side, path, len(wanted), other)


def init_weights(
    model: JointModel, init: Path | None, init_text: Path | None, init_image: Path | None = None
) -> None:
    """A new run's starting weights beyond the pretrained towers: a whole trained checkpoint of the same
    config (init), or one side of one (init_text, init_image; both may be given, from two checkpoints)."""
    if init is not None and (init_text is not None or init_image is not None):
        raise InvalidInputError(
            "--init excludes --init-text and --init-image: --init sets both sides already"
        )
    if init is not None:
        init_from_checkpoint(model, init)
    if init_text is not None:
        init_side_from_checkpoint(model, init_text, "text")
    if init_image is not None:
        init_side_from_checkpoint(model, init_image, "image")


def resumed_teachers(opts: Any, saved: dict[str, Any], resume: Path) -> Any:
    """The options a resumed run goes on with: the teachers and distillation share it started with.
    Given none, they come from the resume file; given others, an input error (the loss would change
    midway). A resume file written before teachers were recorded keeps what the command gives."""
    if "teachers" not in saved:
        return opts
    teachers, distill = tuple(Path(p) for p in saved["teachers"]), float(saved["distill"])
    given = (tuple(opts.teachers), float(opts.distill))
    if given == ((), 0.0):
        if teachers:
            log.info("resumed with its teachers %s at --distill %s", [str(t) for t in teachers], distill)
        return replace(opts, teachers=teachers, distill=distill)
    if given != (teachers, distill):
        started = (
            f"teachers {[str(t) for t in teachers]} at --distill {distill}" if teachers else "no teachers"
        )
        raise InvalidInputError(
            f"--resume {resume}: the run started with {started}; resume it with the same "
            "--teacher/--distill, or with neither"
        )
    return opts


class EpochKeeper(EpochLoop):
    """The joint trainers' epochs: the shared loop (models/training/epochs.py), the best epoch's trainable
    state kept in memory, and the resume file written after each epoch."""

    def __init__(
        self,
        out: Path,
        config: JointConfig,
        model: JointModel,
        optimizer: Any,
        scheduler: Any,
        opts: Any,
        *,
        saved: dict[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(opts.epochs, opts.patience)
        self.out, self.config, self.model, self.opts = out, config, model, opts
        self.optimizer, self.scheduler, self.generator = optimizer, scheduler, generator
        self.best: dict[str, Any] | None = None
        if saved:
            self._restore(saved)

    def _restore(self, saved: dict[str, Any]) -> None:
        self.model.load_checkpoint_state(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        self.history = [EpochLog(**h) for h in saved["history"]]
        self.best, self.first_epoch = saved["best"], int(saved["epoch"]) + 1
        if self.best is not None:
            self.best_epoch, self.best_rsum = int(self.best["epoch"]), float(self.best["rsum"])
        self.stopped = bool(saved.get("finished", False))  # files of before it was written
        set_rng_state(saved["rng"], self.generator)
        log.info("resuming %s after epoch %d", resume_path(self.out), saved["epoch"])

    def step(self, loss: torch.Tensor) -> float:
        """One optimizer and schedule step on a batch's loss; → the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.item())

    def on_best(self, epoch: int, report: ValReport) -> None:
        state = {k: v.detach().cpu().clone() for k, v in self.model.checkpoint_state().items()}
        self.best = {"rsum": report.rsum, "epoch": epoch, "state": state, "report": report.to_dict()}

    def after_epoch(self, epoch: int) -> None:
        """Write the resume file atomically (a kill mid-write leaves the previous epoch's file)."""
        path = resume_path(self.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epoch": epoch,
            "config": self.config.to_json(),
            "finished": self.stopped,
            "model": {k: v.detach().cpu() for k, v in self.model.checkpoint_state().items()},
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": [asdict(h) for h in self.history],
            "best": self.best,
            "rng": rng_state(self.generator),
            "options": {k: str(v) for k, v in asdict(self.opts).items()},
            # what resumed_teachers needs back exactly: the loss a run trains with never changes midway
            "teachers": [str(path) for path in getattr(self.opts, "teachers", ())],
            "distill": float(getattr(self.opts, "distill", 0.0)),
        }
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def final_best(self) -> tuple[int, dict[str, torch.Tensor], ValReport]:
        """→ the best epoch, its trainable state and its val figures."""
        if self.best is None:
            raise ValueError("no epoch ran: epochs must be at least 1 (or the resume file has finished)")
        return int(self.best["epoch"]), self.best["state"], report_from_dict(self.best["report"])
