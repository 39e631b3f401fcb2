"""`photosearch finetune`: CLIP contrastive fine-tuning of a clip-family model on captioned photos.

One random caption per photo per epoch; open_clip's ClipLoss; AdamW with linear warmup then cosine;
bf16 autocast on CUDA (fp16 + loss scaling where bf16 is missing, fp32 on CPU); optional gradient
checkpointing and locked image or text tower. Gradient accumulation caches the other micro-batches'
features (as open_clip_train does), so the loss sees every negative of the whole effective batch.
Several GPUs: `torchrun --nproc_per_node=N -m cli.main finetune ...` (DDP; NCCL on CUDA, gloo on CPU).
After each epoch the val split is measured with models.training.evaluate; the checkpoint written is
the epoch with the best val R@sum, in our self-describing format, so `--model OUT` serves it.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from models.clip.encoder import ClipEncoder
from models.clip.export import save_clip_checkpoint
from models.registry import create_encoder
from models.training.data import load_captioned_photos
from models.training.epochs import EpochLog, EpochLoop
from models.training.evaluate import RetrievalReport, ValReport, evaluate_encoder
from models.training.finetune_data import Distributed, FinetuneError, make_loader, setup_distributed
from models.training.finetune_steps import FinetuneOptions, build_state, run_epoch

log = logging.getLogger(__name__)


@dataclass
class FinetuneResult:
    checkpoint: Path
    history: list[EpochLog]
    step_losses: list[float]
    report: ValReport | None
    best_epoch: int
    seconds: float


def validate(encoder: ClipEncoder, data: Path, opts: FinetuneOptions) -> RetrievalReport:
    """R@K on the val split (or its first max_val_photos) through the same code as `photosearch evaluate`."""
    encoder.model.eval()
    try:
        if opts.max_val_photos is None:
            return evaluate_encoder(encoder, data, "val", workers=min(opts.workers, 4))
        photos = load_captioned_photos(data, "val")[: opts.max_val_photos]
        with tempfile.TemporaryDirectory() as tmp:
            rows = [
                {"image": str(p.path.resolve()), "captions": list(p.captions), "split": "val"} for p in photos
            ]
            (Path(tmp) / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
            return evaluate_encoder(encoder, Path(tmp), "val", workers=min(opts.workers, 4))
    finally:
        encoder.model.train()


def load_clip_encoder(
    model: str, weights: str | Path | None, device: torch.device, checkpoint_dirs: Sequence[Path] = ()
) -> ClipEncoder:
    encoder = create_encoder(model, weights, device, checkpoint_dirs)
    if not isinstance(encoder, ClipEncoder):
        raise FinetuneError(
            f"finetune needs a clip-family model; {model!r} is family {encoder.family!r} "
            "(train joint models with `photosearch train`)"
        )
    return encoder


class FinetuneEpochs(EpochLoop):
    """The shared epoch loop (models/training/epochs.py) for fine-tuning: the checkpoint is written
    whenever an epoch measures best; every process waits for the others at the end of an epoch."""

    def __init__(
        self, encoder: ClipEncoder, out: Path, opts: FinetuneOptions, data: Path, env: Distributed
    ) -> None:
        super().__init__(opts.epochs, show_progress=env.is_main)
        self.encoder, self.out, self.opts, self.data, self.env = encoder, out, opts, data, env
        self.base_key = encoder.key
        self.best_report: ValReport | None = None

    def on_best(self, epoch: int, report: ValReport) -> None:
        self.best_report = report
        _save(self.encoder, self.out, self.opts, self.history, self.data, self.base_key, self.env)

    def after_epoch(self, epoch: int) -> None:
        if self.env.world_size > 1:
            dist.barrier()


def finetune(
    model: str,
    data: Path,
    out: Path,
    opts: FinetuneOptions,
    weights: str | Path | None = None,
    checkpoint_dirs: Sequence[Path] = (),
) -> FinetuneResult:
    """Fine-tune `model` (registered clip name, photosearch checkpoint, or local-dir:) and write `out`.
    checkpoint_dirs: where its weights are searched before the bundled folder."""
    started = time.perf_counter()
    env = setup_distributed(opts.device)
    torch.manual_seed(opts.seed + env.rank)
    encoder = load_clip_encoder(model, weights, env.device, checkpoint_dirs)
    photos = load_captioned_photos(data, "train")[: opts.max_train_photos]
    loader, dataset = make_loader(encoder, photos, opts, env)
    steps_per_epoch = len(loader) // max(1, opts.accum_steps)
    if steps_per_epoch == 0:
        raise FinetuneError(
            f"{len(loader)} batches per epoch cannot make one step of --accum-steps {opts.accum_steps}"
        )
    state = build_state(encoder, opts, env, steps_per_epoch * opts.epochs)
    epochs = FinetuneEpochs(encoder, out, opts, data, env)

    def train_epoch(epoch: int) -> float:
        dataset.epoch = epoch
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        return run_epoch(state, loader, opts, env)

    epochs.run(train_epoch, lambda: validate(encoder, data, opts) if env.is_main else None)
    if env.is_main:
        _write_curves(out, epochs.history, model)
    if env.world_size > 1:
        dist.destroy_process_group()
    seconds = time.perf_counter() - started
    return FinetuneResult(
        out, epochs.history, state.step_losses, epochs.best_report, epochs.best_epoch, seconds
    )


def _save(
    encoder: ClipEncoder,
    out: Path,
    opts: FinetuneOptions,
    history: list[EpochLog],
    data: Path,
    base_key: str,
    env: Distributed,
) -> None:
    info = {
        "base_model": base_key,
        "data": str(data),
        "epoch": history[-1].epoch,
        "history": [asdict(h) for h in history],
        "options": asdict(opts),
        "world_size": env.world_size,
        "torch": torch.__version__,
    }
    save_clip_checkpoint(
        encoder, out, info=info, base_model=base_key, description=f"{base_key} fine-tuned on {data}"
    )


def _write_curves(out: Path, history: list[EpochLog], title: str) -> None:
    from models.training.plots import plot_training_curves

    plot_training_curves(history, out.with_suffix(".png"), title=f"finetune {title}")
    out.with_suffix(".history.json").write_text(json.dumps([asdict(h) for h in history], indent=2))
