"""The steps of CLIP fine-tuning (models/training/finetune.py runs them epoch by epoch): the model made
ready (locks, gradient checkpointing), AdamW with open_clip_train's decay rule, gradient accumulation
that keeps every negative of the effective batch, and one pass over the loader."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import open_clip
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from models.clip.encoder import ClipEncoder, autocast, autocast_dtype
from models.training.finetune_data import Batch, Distributed, FinetuneError
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
