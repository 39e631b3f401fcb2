"""`photosearch train`: fit a joint model's heads on a captioned photo set.

Frozen towers are run once and cached; each epoch then samples one caption per photo (so a
batch never holds two captions of one photo as false negatives), with a flipped view of the
photo half the time. Early stopping keeps the epoch with the best validation R@sum.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.joint.config import JointConfig
from models.joint.model import JointModel
from models.training.data import CaptionedPhoto, load_captioned_photos
from models.training.evaluate import RetrievalReport, retrieval_report
from models.training.features import image_features, text_features
from models.training.losses import contrastive_loss
from models.training.options import TrainOptions, TrainResult, run_info, save_trained
from models.training.resume import EpochKeeper, init_from_checkpoint, start_run
from models.training.schedule import warmup_cosine
from models.training.train_e2e import has_trainable_tower, train_e2e

log = logging.getLogger(__name__)


@dataclass
class _Features:
    images: torch.Tensor  # (views, n_photos, *frozen image shape): pooled float32 or float16 maps
    texts: torch.Tensor  # (n_captions, text_dim) or (n_captions, T, text_dim) float16 token states
    text_mask: torch.Tensor | None  # (n_captions, T) when texts are token states
    caption_owner: np.ndarray  # (n_captions,) photo index
    captions_of: list[list[int]]  # photo index → caption rows

    def text_batch(self, rows: Sequence[int] | slice) -> tuple[torch.Tensor, torch.Tensor | None]:
        mask = None if self.text_mask is None else self.text_mask[rows]
        return self.texts[rows].float(), mask


def _features(
    model: JointModel,
    photos: list[CaptionedPhoto],
    views: tuple[str, ...],
    opts: TrainOptions,
    config: JointConfig,
) -> _Features:
    device = torch.device(opts.device)
    preprocess = config.preprocess
    images = image_features(
        model.image_tower,
        preprocess,
        [p.path for p in photos],
        spec=config.image_tower,
        cache_dir=opts.cache_dir,
        views=views,
        device=device,
        workers=opts.workers,
        crop_seed=opts.crop_seed,
    )
    texts: list[str] = []
    owner: list[int] = []
    captions_of: list[list[int]] = []
    for index, photo in enumerate(photos):
        captions_of.append(list(range(len(texts), len(texts) + len(photo.captions))))
        texts.extend(photo.captions)
        owner.extend([index] * len(photo.captions))
    text, mask = text_features(
        model.text_tower, texts, spec=config.text_tower, cache_dir=opts.cache_dir, device=device
    )
    return _Features(
        torch.from_numpy(np.ascontiguousarray(images)),
        torch.from_numpy(np.ascontiguousarray(text)),
        None if mask is None else torch.from_numpy(mask),
        np.array(owner),
        captions_of,
    )


@torch.no_grad()
def _validate(model: JointModel, val: _Features, chunk: int = 250) -> RetrievalReport:
    model.eval()
    image = torch.cat(
        [
            model.embed_image_frozen(val.images[0, i : i + chunk].float())
            for i in range(0, val.images.shape[1], chunk)
        ]
    )
    text = torch.cat(
        [
            model.embed_text_frozen(*val.text_batch(slice(i, i + chunk * 4)))
            for i in range(0, len(val.texts), chunk * 4)
        ]
    )
    return retrieval_report(image.numpy(), text.numpy(), val.caption_owner)


def _optimizer(model: JointModel, opts: TrainOptions, tower_lr_scale: float) -> torch.optim.Optimizer:
    """Heads learn at lr; pretrained tower layers being fine-tuned at lr × tower_lr_scale."""
    towers = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and n.startswith(("image_tower.", "text_tower."))
    ]
    rest = [
        p
        for n, p in model.named_parameters()
        if p.requires_grad and not n.startswith(("image_tower.", "text_tower."))
    ]
    groups = [{"params": rest, "lr": opts.lr}]
    if towers:
        groups.append({"params": towers, "lr": opts.lr * tower_lr_scale})
    return torch.optim.AdamW(groups, lr=opts.lr, weight_decay=opts.weight_decay)


def train_joint(
    config: JointConfig,
    data: Path,
    out: Path,
    opts: TrainOptions,
    *,
    resume: Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or, with resume, carry on from `<out>.resume.pt`) and write the best epoch's checkpoint.

    stop_after: end this run after that epoch (as if interrupted); the resume file lets a later run go on.
    """
    if has_trainable_tower(config):  # towers trained end to end
        return train_e2e(config, data, out, opts, resume=resume, stop_after=stop_after)
    started = time.perf_counter()
    saved, config = start_run(config, opts.seed, resume)
    model = JointModel(config)
    if opts.init is not None and saved is None:
        init_from_checkpoint(model, opts.init)
    train = _features(model, load_captioned_photos(data, "train"), config.train.views, opts, config)
    val = _features(model, load_captioned_photos(data, "val"), ("original",), opts, config)
    keeper = _keeper(model, train.images.shape[1], opts, out, saved)
    keeper.run(lambda _: _train_epoch(model, train, keeper, opts), lambda: _validate(model, val), stop_after)
    best_epoch, state, report = keeper.final_best()
    info = run_info(best_epoch, report, data, opts)
    info["train_seconds"] = round(time.perf_counter() - started, 1)
    # tuned pretrained-tower layers are stored as float16: half the size, no measurable change
    state = {
        k: v.half() if k.startswith(("image_tower.", "text_tower.")) and v.is_floating_point() else v
        for k, v in state.items()
    }
    save_trained(out, config, state, info, data, opts, keeper.history)
    return TrainResult(out, best_epoch, report, keeper.history, time.perf_counter() - started)


def _keeper(
    model: JointModel, n_photos: int, opts: TrainOptions, out: Path, saved: dict[str, Any] | None
) -> EpochKeeper:
    """The epoch loop with its optimizer, warmup + cosine schedule and the generator batches draw from."""
    optimizer = _optimizer(model, opts, model.config.train.tower_lr_scale)
    steps_per_epoch = math.ceil(n_photos / opts.batch_size)
    total, warmup = steps_per_epoch * opts.epochs, int(steps_per_epoch * opts.warmup_epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(warmup, total))
    generator = torch.Generator().manual_seed(opts.seed)
    return EpochKeeper(out, model.config, model, optimizer, scheduler, opts, saved=saved, generator=generator)


def _train_epoch(model: JointModel, train: _Features, keeper: EpochKeeper, opts: TrainOptions) -> float:
    """One pass over the photos in random order, one random view and caption of each → mean loss."""
    assert keeper.generator is not None
    generator, n_photos = keeper.generator, train.images.shape[1]
    model.train()
    losses = []
    order = torch.randperm(n_photos, generator=generator)
    for start in range(0, n_photos, opts.batch_size):
        batch = order[start : start + opts.batch_size]
        if len(batch) < 2:
            continue
        views = torch.randint(0, train.images.shape[0], (len(batch),), generator=generator)
        caption_rows = [random.choice(train.captions_of[i]) for i in batch.tolist()]
        image = model.embed_image_frozen(train.images[views, batch].float())
        text = model.embed_text_frozen(*train.text_batch(caption_rows))
        loss = contrastive_loss(opts.loss, image, text, model.logit_scale, opts.margin)
        losses.append(keeper.step(loss))
    return float(np.mean(losses))
