"""`photosearch train`: fit a joint model's heads on one or several captioned photo sets.

Frozen towers are run once and cached (per set); each epoch then draws photos from every set by its
sampling weight and one caption per photo (so a batch never holds two captions of one photo as false
negatives), with one of the cached views of the photo. Each set's val split is measured on its own;
early stopping keeps the epoch with the best sum of their R@sums.
"""

from __future__ import annotations

import logging
import math
import random
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.errors import InvalidInputError
from models.joint.config import JointConfig
from models.joint.model import JointModel
from models.training.data import (
    CaptionedPhoto,
    SetSampling,
    TrainingData,
    as_sets,
    load_split,
    load_val_sets,
)
from models.training.distill import Teachers, check_teachers, distill_loss, teacher_vectors
from models.training.evaluate import RetrievalReport, ValReport, retrieval_report, val_report
from models.training.features import image_features, text_features
from models.training.losses import contrastive_loss
from models.training.options import TrainOptions, TrainResult, half_towers, run_info, save_trained
from models.training.resume import EpochKeeper, init_weights, resumed_teachers, start_run
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

    @property
    def n_views(self) -> int:
        return int(self.images.shape[0])

    def image_batch(self, views: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
        """One cached view of each photo (view i of photo i)."""
        return self.images[views, photos]

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
        _cached_tensor(images),
        _cached_tensor(text),
        None if mask is None else _cached_tensor(mask),
        np.array(owner),
        captions_of,
    )


def _cached_tensor(array: np.ndarray) -> torch.Tensor:
    """A cached array (a read-only memory map when the cache was already there) as a tensor without a
    copy; training only reads these, so PyTorch's warning about non-writable arrays does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(np.ascontiguousarray(array))


def _pad_tokens(t: torch.Tensor, length: int) -> torch.Tensor:
    """Token states (n, T, d) or masks (n, T) padded to `length` tokens."""
    missing = length - t.shape[1]
    return nn.functional.pad(t, (0, 0, 0, missing) if t.dim() == 3 else (0, missing)) if missing else t


@dataclass
class _Joined:
    """Several sets' features read as one, photos and captions laid end to end, without copying them:
    each batch gathers its rows from its own set's cache (memory-mapped, so the OS may drop and re-read
    its pages, and a large mix of sets trains in the memory its steps need). Token states are padded
    to the longest caption of any set, as one array of them would be."""

    parts: list[_Features]
    photo_offsets: np.ndarray  # (len(parts) + 1,) first photo of each set; the last is the total
    caption_offsets: np.ndarray  # (len(parts) + 1,) first caption row of each set
    captions_of: list[list[int]]  # photo index → caption rows, both numbered across the sets
    tokens: int  # token states padded to this many tokens

    @property
    def n_views(self) -> int:
        return int(self.parts[0].images.shape[0])

    def image_batch(self, views: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
        return _scatter(
            len(photos),
            [
                (where, self.parts[k].image_batch(views[where], local))
                for k, where, local in _by_part(self.photo_offsets, photos)
            ],
        )

    def text_batch(self, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows_ = torch.as_tensor(rows, dtype=torch.long)
        states, masks = [], []
        for k, where, local in _by_part(self.caption_offsets, rows_):
            piece, mask = self.parts[k].text_batch(local.tolist())
            if mask is not None:  # token states: padded to the longest caption of any set
                piece, mask = _pad_tokens(piece, self.tokens), _pad_tokens(mask, self.tokens)
                masks.append((where, mask))
            states.append((where, piece))
        return _scatter(len(rows_), states), (_scatter(len(rows_), masks) if masks else None)


def _by_part(offsets: np.ndarray, rows: torch.Tensor) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Rows numbered across sets laid end to end (set k starts at offsets[k]) → for each set holding
    some: (k, where those rows stand in `rows`, their numbers within set k)."""
    part_of = np.searchsorted(offsets, rows.numpy(), side="right") - 1
    return [
        (k, where, rows[where] - int(offsets[k]))
        for k in range(len(offsets) - 1)
        if len(where := torch.from_numpy(np.flatnonzero(part_of == k)))
    ]


def _scatter(n: int, pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Rows gathered set by set, put back in the order asked for: piece i's rows go to `where`."""
    out = torch.empty((n, *pieces[0][1].shape[1:]), dtype=pieces[0][1].dtype)
    for where, piece in pieces:
        out[where] = piece
    return out


def _join(parts: list[_Features]) -> _Features | _Joined:
    """Several sets' features as one, photos and captions laid end to end."""
    if len(parts) == 1:
        return parts[0]
    photo_offsets = np.cumsum([0] + [p.images.shape[1] for p in parts])
    caption_offsets = np.cumsum([0] + [len(p.texts) for p in parts])
    return _Joined(
        parts,
        photo_offsets,
        caption_offsets,
        [
            [row + int(offset) for row in rows]
            for p, offset in zip(parts, caption_offsets, strict=False)
            for rows in p.captions_of
        ],
        max(int(p.texts.shape[1]) for p in parts) if parts[0].text_mask is not None else 0,
    )


@torch.no_grad()
def _validate(model: JointModel, vals: dict[str, _Features]) -> ValReport:
    return val_report({name: _validate_set(model, val) for name, val in vals.items()})


@torch.no_grad()
def _validate_set(model: JointModel, val: _Features, chunk: int = 250) -> RetrievalReport:
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
    data: TrainingData,
    out: Path,
    opts: TrainOptions,
    *,
    resume: Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or, with resume, carry on from `<out>.resume.pt`) and write the best epoch's checkpoint.

    data: one captioned folder, or several TrainingSets with their sampling weights.
    stop_after: end this run after that epoch (as if interrupted); the resume file lets a later run go on.
    """
    if opts.token_dropout and not has_trainable_tower(config) and not _token_states(config):
        raise InvalidInputError(
            "token dropout needs the caption's tokens: a text tower tuned on token states (a sentence "
            "encoder with finetune_layers > 0) or one trained end to end; this config caches pooled vectors"
        )
    check_teachers(opts.teachers, opts.distill)
    if has_trainable_tower(config):  # towers trained end to end
        if opts.teachers:
            raise InvalidInputError(
                "--teacher works with cached tower outputs; this config trains its towers end to end"
            )
        return train_e2e(config, data, out, opts, resume=resume, stop_after=stop_after)
    started = time.perf_counter()
    saved, config = start_run(config, opts.seed, resume)
    if saved is not None and resume is not None:
        opts = resumed_teachers(opts, saved, resume)
        check_teachers(opts.teachers, opts.distill)
    model = JointModel(config)
    if saved is None:
        init_weights(model, opts.init, opts.init_text, opts.init_image)
    sets = as_sets(data)
    vals = {
        name: _features(model, photos, ("original",), opts, config)
        for name, photos in load_val_sets(sets).items()
    }
    splits = [load_split(s.path, "train") for s in sets]
    parts = [_features(model, photos, config.train.views, opts, config) for photos in splits]
    sampling = SetSampling(tuple(p.images.shape[1] for p in parts), tuple(s.weight for s in sets))
    train = _join(parts)
    teachers = (
        teacher_vectors(
            opts.teachers,
            splits,
            config.train.views,
            cache_dir=opts.cache_dir,
            device=torch.device(opts.device),
            crop_seed=opts.crop_seed,
            workers=opts.workers,
        )
        if opts.teachers
        else None
    )
    keeper = _keeper(model, sampling.draws, opts, out, saved)
    keeper.run(
        lambda _: _train_epoch(model, train, sampling, keeper, opts, teachers),
        lambda: _validate(model, vals),
        stop_after,
    )
    best_epoch, state, report = keeper.final_best()
    info = run_info(best_epoch, report, data, opts)
    info["train_seconds"] = round(time.perf_counter() - started, 1)
    save_trained(out, config, half_towers(state), info, data, opts, keeper.history)
    return TrainResult(out, best_epoch, report, keeper.history, time.perf_counter() - started)


def _token_states(config: JointConfig) -> bool:
    """Whether the cached text features are token states (a partly tuned MiniLM) rather than pooled."""
    return getattr(config.text_tower, "finetune_layers", 0) > 0


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


def drop_tokens(mask: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """Caption augmentation on cached token states: each token but the first ([CLS]) is left out of
    attention and pooling with chance `share`, as if the word were not in the caption."""
    dropped = torch.rand(mask.shape, generator=generator) < share
    dropped[:, 0] = False
    return mask.bool() & ~dropped


def _train_epoch(
    model: JointModel,
    train: _Features | _Joined,
    sampling: SetSampling,
    keeper: EpochKeeper,
    opts: TrainOptions,
    teachers: Teachers | None = None,
) -> float:
    """One epoch's photos (each set by its weight) in random order, one random view and caption of each
    → mean loss; with teachers, their share of it is how far the batch's rankings are from theirs."""
    assert keeper.generator is not None
    generator = keeper.generator
    model.train()
    losses = []
    order = sampling.order(generator)
    for start in range(0, len(order), opts.batch_size):
        batch = order[start : start + opts.batch_size]
        if len(batch) < 2:
            continue
        views = torch.randint(0, train.n_views, (len(batch),), generator=generator)
        caption_rows = [random.choice(train.captions_of[i]) for i in batch.tolist()]
        image = model.embed_image_frozen(train.image_batch(views, batch).float())
        tokens, mask = train.text_batch(caption_rows)
        if opts.token_dropout and mask is not None:
            mask = drop_tokens(mask, opts.token_dropout, generator)
        text = model.embed_text_frozen(tokens, mask)
        loss = contrastive_loss(opts.loss, image, text, model.logit_scale, opts.margin, opts.hard_negatives)
        if teachers is not None:
            taught = distill_loss(
                image,
                text,
                model.logit_scale,
                teachers.images[views, batch],
                teachers.texts[caption_rows],
                teachers.scale,
            )
            loss = (1 - opts.distill) * loss + opts.distill * taught
        losses.append(keeper.step(loss))
    return float(np.mean(losses))
