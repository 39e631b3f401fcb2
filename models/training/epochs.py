"""The epoch loop every trainer shares: a progress bar and a log line per epoch, the history, the best
epoch by validation R@sum, and early stopping after `patience` epochs without a better one. Trainers
add what they keep of the best epoch (on_best) and what they write after each epoch (after_epoch)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.progress import Progress

from models.training.evaluate import ValReport

log = logging.getLogger(__name__)


@dataclass
class EpochLog:
    epoch: int
    loss: float  # mean training loss of the epoch
    val_rsum: float  # 0 where this process does not measure (other ranks of a distributed run)
    seconds: float
    val: dict[str, Any] = field(default_factory=dict)  # the epoch's validation figures (per set when several)


class EpochLoop:
    def __init__(self, epochs: int, patience: int | None = None, *, show_progress: bool = True) -> None:
        """patience: stop after that many epochs without a better val R@sum (None: run every epoch)."""
        self.epochs, self.patience, self.show_progress = epochs, patience, show_progress
        self.history: list[EpochLog] = []
        self.first_epoch, self.stopped = 1, False
        self.best_epoch, self.best_rsum = 0, float("-inf")

    def on_best(self, epoch: int, report: ValReport) -> None:
        """Called when an epoch measures better than every earlier one."""

    def after_epoch(self, epoch: int) -> None:
        """Called at the end of every epoch, once the best epoch and early stopping are decided."""

    def run(
        self,
        train_epoch: Callable[[int], float],
        validate: Callable[[], ValReport | None],
        stop_after: int | None = None,
    ) -> None:
        """train_epoch(epoch) → its mean loss; validate() → val figures (None: not measured here).
        stop_after: end the run after that epoch (as if interrupted)."""
        with Progress(disable=not self.show_progress) as progress:
            task = progress.add_task("training", total=self.epochs, completed=self.first_epoch - 1)
            for epoch in range(self.first_epoch, self.epochs + 1):
                if self.stopped:
                    break
                started = time.perf_counter()
                loss = train_epoch(epoch)
                report = validate()
                self._record(epoch, loss, report, time.perf_counter() - started)
                described = f"epoch {epoch} loss {loss:.3f} val R@sum {self.history[-1].val_rsum:.1f}"
                progress.update(task, advance=1, description=described)
                self.after_epoch(epoch)
                if self.stopped:
                    log.info("early stop at epoch %d (best %d)", epoch, self.best_epoch)
                if self.stopped or (stop_after is not None and epoch >= stop_after):
                    break

    def _record(self, epoch: int, loss: float, report: ValReport | None, seconds: float) -> None:
        rsum = report.rsum if report is not None else 0.0
        self.history.append(EpochLog(epoch, loss, rsum, seconds, report.to_dict() if report else {}))
        if report is None:
            return
        log.info("epoch %d: loss %.3f, val R@sum %.1f (%s)", epoch, loss, rsum, report.summary())
        if self.best_epoch == 0 or rsum > self.best_rsum:
            self.best_epoch, self.best_rsum = epoch, rsum
            self.on_best(epoch, report)
        self.stopped = self.patience is not None and epoch - self.best_epoch >= self.patience
