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

import contextlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from models.clip.encoder import ClipEncoder, autocast, autocast_dtype
from models.clip.export import save_clip_checkpoint
from models.registry import create_encoder
from models.training.data import load_captioned_photos
from models.training.evaluate import RetrievalReport, evaluate_encoder
from models.training.finetune_data import Batch, Distributed, FinetuneError, make_loader, setup_distributed
from models.training.schedule import warmup_cosine

log = logging.getLogger(__name__)


@dataclass
class FinetuneOptions:
    epochs: int = 5
    batch_size: int = 64  # per process and micro-batch
    accum_steps: int = 1  # micro-batches per optimiser step
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup_steps: int = 100
    grad_clip: float = 1.0
    lock_image: bool = False
    lock_text: bool = False
    grad_checkpointing: bool = False
    device: str = "auto"
    workers: int = 4
    seed: int = 0
    max_train_photos: int | None = None
    max_val_photos: int | None = None


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    val_rsum: float
    val: dict[str, float]
    seconds: float


@dataclass
class FinetuneResult:
    checkpoint: Path
    history: list[EpochRecord]
    step_losses: list[float]
    report: RetrievalReport | None
    best_epoch: int
    seconds: float


@dataclass
class TrainState:
    model: nn.Module  # what forward runs: the DDP wrapper or the bare model
    bare: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    loss_fn: nn.Module
    amp: torch.dtype | None
    step_losses: list[float] = field(default_factory=list)


def prepare_model(model: Any, opts: FinetuneOptions) -> None:
    """Locks, gradient checkpointing and dict outputs on an open_clip model, in train mode."""
    if opts.lock_image and opts.lock_text:
        raise FinetuneError(
            "--lock-image and --lock-text together leave nothing to train; keep one tower free"
        )
    if opts.lock_image:
        model.lock_image_tower(unlocked_groups=0, freeze_bn_stats=True)
    if opts.lock_text:
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    if opts.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.output_dict = True  # forward → {"image_features", "text_features", "logit_scale", ...}
    model.train()


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on gains, biases, norms and the temperature (open_clip_train's rule)."""
    decay: list[nn.Parameter] = []
    plain: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (plain if exempt else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def accumulate_gradients(
    model: nn.Module,
    loss_fn: nn.Module,
    micro_batches: Sequence[Batch],
    amp: torch.dtype | None,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> float:
    """Backward of one CLIP loss over all micro-batches as if they were one batch; returns the loss.

    Features of every micro-batch are first computed without gradients; then each micro-batch is
    re-run with gradients and its features spliced into the cached ones, so the gradients equal the
    big batch's (exactly, in fp32) while memory stays one micro-batch's. The temperature's gradient
    is taken once, in the last pass (the one DDP synchronises).
    """
    batches = [(p.to(device, non_blocking=True), t.to(device, non_blocking=True)) for p, t in micro_batches]
    cached_images: list[torch.Tensor] = []
    cached_texts: list[torch.Tensor] = []
    if len(batches) > 1:
        with torch.no_grad(), autocast(device, amp):
            for pixels, tokens in batches:
                out = model(image=pixels, text=tokens)
                cached_images.append(out["image_features"])
                cached_texts.append(out["text_features"])
    loss_value = 0.0
    last = len(batches) - 1
    for j, (pixels, tokens) in enumerate(batches):
        no_sync = j < last and isinstance(model, DistributedDataParallel)
        with model.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[operator]
            with autocast(device, amp):
                out = model(image=pixels, text=tokens)
                images = torch.cat([*cached_images[:j], out["image_features"], *cached_images[j + 1 :]])
                texts = torch.cat([*cached_texts[:j], out["text_features"], *cached_texts[j + 1 :]])
                scale = out["logit_scale"] if j == last else out["logit_scale"].detach()
                loss = loss_fn(images, texts, scale)
            scaler.scale(loss).backward()
        loss_value = float(loss.detach())
    return loss_value


def optimiser_step(state: TrainState, grad_clip: float) -> None:
    state.scaler.unscale_(state.optimizer)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_([p for p in state.bare.parameters() if p.requires_grad], grad_clip)
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.optimizer.zero_grad(set_to_none=True)
    state.scheduler.step()
    with torch.no_grad():  # CLIP keeps exp(logit_scale) ≤ 100
        logit_scale: torch.Tensor = state.bare.logit_scale  # type: ignore[assignment]
        logit_scale.clamp_(0, math.log(100))


def run_epoch(state: TrainState, loader: DataLoader[Any], opts: FinetuneOptions, env: Distributed) -> float:
    """One pass over the loader; returns the mean loss over optimiser steps (all processes)."""
    pending: list[Batch] = []
    losses: list[float] = []
    for batch in loader:
        pending.append(batch)
        if len(pending) < opts.accum_steps:
            continue
        loss = accumulate_gradients(state.model, state.loss_fn, pending, state.amp, state.scaler, env.device)
        optimiser_step(state, opts.grad_clip)
        losses.append(loss)
        state.step_losses.append(loss)
        pending = []
        if env.is_main and len(losses) % 10 == 0:
            log.info(
                "step %d: loss %.4f, lr %.2e", len(state.step_losses), loss, state.scheduler.get_last_lr()[0]
            )
    total = torch.tensor([sum(losses), len(losses)], dtype=torch.float64)
    if env.world_size > 1:
        total = total.to(env.device)
        dist.all_reduce(total)
    return float(total[0] / max(1.0, float(total[1])))


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


def build_state(
    encoder: ClipEncoder, opts: FinetuneOptions, env: Distributed, total_steps: int
) -> TrainState:
    bare = encoder.model
    prepare_model(bare, opts)
    optimizer = torch.optim.AdamW(
        parameter_groups(bare, opts.weight_decay), lr=opts.lr, betas=(0.9, 0.98), eps=1e-6
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(opts.warmup_steps, total_steps))
    model: nn.Module = bare
    if env.world_size > 1:
        model = DistributedDataParallel(
            bare, device_ids=[env.device.index] if env.device.type == "cuda" else None
        )
    amp = autocast_dtype(env.device)
    loss_fn = open_clip.ClipLoss(
        local_loss=True, gather_with_grad=True, cache_labels=True, rank=env.rank, world_size=env.world_size
    )
    scaler = torch.amp.GradScaler(env.device.type, enabled=amp == torch.float16)
    return TrainState(model, bare, optimizer, scheduler, scaler, loss_fn, amp)


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
    base_key = encoder.key
    photos = load_captioned_photos(data, "train")[: opts.max_train_photos]
    loader, dataset = make_loader(encoder, photos, opts, env)
    steps_per_epoch = len(loader) // max(1, opts.accum_steps)
    if steps_per_epoch == 0:
        raise FinetuneError(
            f"{len(loader)} batches per epoch cannot make one step of --accum-steps {opts.accum_steps}"
        )
    state = build_state(encoder, opts, env, steps_per_epoch * opts.epochs)
    history: list[EpochRecord] = []
    best: tuple[float, int, RetrievalReport | None] = (-1.0, 0, None)
    for epoch in range(1, opts.epochs + 1):
        epoch_started = time.perf_counter()
        dataset.epoch = epoch
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        loss = run_epoch(state, loader, opts, env)
        report = validate(encoder, data, opts) if env.is_main else None
        rsum = report.rsum if report else 0.0
        history.append(
            EpochRecord(
                epoch, loss, rsum, report.to_dict() if report else {}, time.perf_counter() - epoch_started
            )
        )
        if env.is_main:
            log.info("epoch %d: loss %.4f, val R@sum %.1f", epoch, loss, rsum)
            if rsum > best[0]:
                best = (rsum, epoch, report)
                _save(encoder, out, opts, history, data, base_key, env)
        if env.world_size > 1:
            dist.barrier()
    if env.is_main:
        _write_curves(out, history, model)
    if env.world_size > 1:
        dist.destroy_process_group()
    return FinetuneResult(out, history, state.step_losses, best[2], best[1], time.perf_counter() - started)


def _save(
    encoder: ClipEncoder,
    out: Path,
    opts: FinetuneOptions,
    history: list[EpochRecord],
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


def _write_curves(out: Path, history: list[EpochRecord], title: str) -> None:
    from models.training.plots import plot_training_curves

    plot_training_curves(history, out.with_suffix(".png"), title=f"finetune {title}")
    out.with_suffix(".history.json").write_text(json.dumps([asdict(h) for h in history], indent=2))
