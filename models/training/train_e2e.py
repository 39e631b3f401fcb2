"""End-to-end training for joint models with a trainable tower (text towers from scratch, the
scratch CNN). `train_joint` dispatches here when a tower is trainable.

A frozen image tower is still run once and cached (views: original + flipped); a trainable one sees
photos decoded per batch with a random resized crop and flip. Each step samples one caption per photo
(two for the caption-only objective). Warmup + cosine AdamW, early stopping on validation R@sum, and
after every epoch a resume file (models/training/resume.py) for `--resume`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.joint.config import JointConfig, ResNetScratchSpec, SentenceEncoderSpec
from models.joint.model import JointModel
from models.preprocess import PreprocessConfig
from models.training.data import CaptionedPhoto, SetSampling, TrainingData, as_sets, load_split, load_val_sets
from models.training.e2e_data import Batch, TrainPhotos, batches, with_vocab
from models.training.evaluate import RetrievalReport, ValReport, retrieval_report, val_report
from models.training.features import image_features
from models.training.losses import contrastive_loss, info_nce
from models.training.options import TrainOptions, TrainResult, run_info, save_trained
from models.training.reranker_train import train_reranker
from models.training.resume import EpochKeeper, init_weights, start_run
from models.training.schedule import warmup_cosine

log = logging.getLogger(__name__)


class _Images:
    """Image embeddings for a batch: from cached frozen-tower features, or from decoded pixels."""

    def __init__(
        self,
        model: JointModel,
        config: JointConfig,
        opts: TrainOptions,
        data_photos: dict[str, list[CaptionedPhoto]],
    ) -> None:
        self.model, self.device = model, torch.device(opts.device)
        self.preprocess = config.preprocess
        self.frozen = bool(getattr(model.image_tower, "frozen", False))
        self.cached: dict[str, torch.Tensor] = {}
        if self.frozen:
            for split, photos in data_photos.items():
                views = ("original", "hflip") if split.startswith("train") else ("original",)
                feats = image_features(
                    model.image_tower,
                    self.preprocess,
                    [p.path for p in photos],
                    spec=config.image_tower,
                    cache_dir=opts.cache_dir,
                    views=views,
                    device=self.device,
                    workers=opts.workers,
                )  # (views, n_photos, feature_dim)
                self.cached[split] = torch.tensor(feats)  # a writable copy (np.load may map the file)

    def dataset_preprocess(self) -> PreprocessConfig | None:
        return None if self.frozen else self.preprocess

    def embed(self, split: str, batch: Batch) -> torch.Tensor:
        """→ (batch, embed_dim) unit vectors."""
        if self.frozen:
            return self.model.embed_image_features(
                self.cached[split][batch.views, batch.indices].to(self.device)
            )
        assert batch.pixels is not None
        return self.model.encode_image(batch.pixels.to(self.device))


def _step_loss(
    model: JointModel, images: _Images, batch: Batch, opts: TrainOptions, objective: str
) -> torch.Tensor:
    image = images.embed("train", batch)  # (batch, embed_dim)
    captions = batch.captions[0]
    if opts.token_dropout:
        captions = [drop_words(c, opts.token_dropout) for c in captions]
    text = model.encode_text(captions)  # (batch, embed_dim)
    if objective == "captions":  # captions of one photo come together; images are mapped into that space
        other = model.encode_text(batch.captions[1])
        return info_nce(text, other, model.logit_scale) + info_nce(image, text.detach(), model.logit_scale)
    return contrastive_loss(opts.loss, image, text, model.logit_scale, opts.margin, opts.hard_negatives)


def drop_words(caption: str, share: float) -> str:
    """Caption augmentation for towers that read text: each word is left out with chance `share`
    (never all of them)."""
    words = caption.split()
    kept = [word for word in words if random.random() >= share]
    return " ".join(kept or words[:1])


@torch.no_grad()
def _validate(
    model: JointModel, images: _Images, vals: dict[str, list[CaptionedPhoto]], opts: TrainOptions
) -> ValReport:
    return val_report(
        {name: _validate_set(model, images, name, photos, opts) for name, photos in vals.items()}
    )


def _validate_set(
    model: JointModel, images: _Images, name: str, photos: list[CaptionedPhoto], opts: TrainOptions
) -> RetrievalReport:
    model.eval()
    dataset = TrainPhotos(photos, images.dataset_preprocess(), seed=0, augment=False)
    vectors = [
        images.embed(f"val:{name}", b)
        for b in batches(dataset, epoch=0, batch_size=64, shuffle=False, workers=opts.workers)
    ]
    texts = [c for p in photos for c in p.captions]
    owners = np.array([i for i, p in enumerate(photos) for _ in p.captions])
    text = torch.cat([model.encode_text(texts[i : i + 512]) for i in range(0, len(texts), 512)])
    return retrieval_report(torch.cat(vectors).cpu().numpy(), text.cpu().numpy(), owners)


def _schedule(steps_per_epoch: int, opts: TrainOptions) -> Callable[[int], float]:
    return warmup_cosine(int(steps_per_epoch * opts.warmup_epochs), steps_per_epoch * opts.epochs)


def train_e2e(
    config: JointConfig,
    data: TrainingData,
    out: Path,
    opts: TrainOptions,
    *,
    resume: Path | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or, with resume, carry on training) and write the best epoch's checkpoint to `out`.

    stop_after: end this run after that epoch (as if interrupted); the resume file lets a later run go on.
    """
    started = time.perf_counter()
    saved, config = start_run(config, opts.seed, resume)
    sets = as_sets(data)
    parts = [load_split(s.path, "train") for s in sets]
    train_photos, vals = [p for part in parts for p in part], load_val_sets(sets)
    config = with_vocab(config, train_photos)
    model = JointModel(config)
    if saved is None:
        init_weights(model, opts.init, opts.init_text, opts.init_image)
    model = model.to(torch.device(opts.device))
    images = _Images(model, config, opts, {"train": train_photos} | {f"val:{n}": v for n, v in vals.items()})
    captions_per_item = 2 if config.loss.objective == "captions" else 1
    dataset = TrainPhotos(
        train_photos, images.dataset_preprocess(), seed=opts.seed, captions_per_item=captions_per_item
    )
    sampling = SetSampling(tuple(len(part) for part in parts), tuple(s.weight for s in sets))
    keeper = _keeper(model, sampling.draws, opts, out, saved)
    validate = partial(_validate, model, images, vals, opts)
    keeper.run(
        lambda epoch: _train_epoch(model, images, dataset, keeper, epoch, sampling), validate, stop_after
    )
    best_epoch, state, report = keeper.final_best()
    model.load_checkpoint_state(state)
    info = run_info(best_epoch, report, data, opts)
    if model.reranker is not None:
        info["reranker"] = train_reranker(model, config, train_photos, vals, opts)
    info["train_seconds"] = round(time.perf_counter() - started, 1)
    state = {k: v.detach().cpu() for k, v in model.checkpoint_state().items()}
    save_trained(out, config, state, info, data, opts, keeper.history)
    return TrainResult(out, best_epoch, report, keeper.history, time.perf_counter() - started)


def _keeper(
    model: JointModel, n_photos: int, opts: TrainOptions, out: Path, saved: dict[str, Any] | None
) -> EpochKeeper:
    """The epoch loop with AdamW over every trainable parameter and a warmup + cosine schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=opts.lr, weight_decay=opts.weight_decay)
    schedule = _schedule(math.ceil(n_photos / opts.batch_size), opts)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return EpochKeeper(out, model.config, model, optimizer, scheduler, opts, saved=saved)


def _train_epoch(
    model: JointModel,
    images: _Images,
    dataset: TrainPhotos,
    keeper: EpochKeeper,
    epoch: int,
    sampling: SetSampling,
) -> float:
    """One epoch's training photos (each set by its weight) in the epoch's order → the mean loss."""
    opts = keeper.opts
    model.train()
    losses = []
    loader = batches(
        dataset,
        epoch=epoch,
        batch_size=opts.batch_size,
        shuffle=True,
        workers=opts.workers,
        sampling=sampling,
    )
    for batch in loader:
        if len(batch.indices) < 2:
            continue
        loss = _step_loss(model, images, batch, opts, model.config.loss.objective)
        losses.append(keeper.step(loss))
    return float(np.mean(losses))


def has_trainable_tower(config: JointConfig) -> bool:
    """True when a tower learns (from-scratch types, unfrozen pretrained blocks): train end to end."""
    image, text = config.image_tower, config.text_tower
    trainable_image = isinstance(image, ResNetScratchSpec) or bool(image.trainable_blocks)
    return trainable_image or not isinstance(text, SentenceEncoderSpec) or text.trainable
