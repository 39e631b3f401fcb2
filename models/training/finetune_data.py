"""Data and processes for `photosearch finetune`: caption pairs, their loader, torchrun set-up."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from models.clip.encoder import ClipEncoder
from models.clip.factory import Tokenizer
from models.errors import InvalidInputError
from models.images import decode_photo
from models.preprocess import PreprocessConfig
from models.runtime import resolve_device
from models.training.data import CaptionedPhoto

Batch = tuple[torch.Tensor, torch.Tensor]  # pixels (b, 3, H, W), tokens (b, context_length)


class LoaderOptions(Protocol):
    batch_size: int
    workers: int
    seed: int


class FinetuneError(InvalidInputError):
    """Options or data that cannot fine-tune; the message says what would work."""


@dataclass
class Distributed:
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Distributed:
    """torchrun's WORLD_SIZE/LOCAL_RANK → one process per device; a plain run is world size 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    target = resolve_device(device)
    if world == 1:
        return Distributed(0, 1, target)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if target.type == "cuda":
        target = torch.device("cuda", local_rank)
        torch.cuda.set_device(target)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if target.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world, target)


class CaptionPairs(Dataset[tuple[torch.Tensor, str]]):
    """(pixels (3, H, W), one of the photo's captions, drawn anew each epoch)."""

    def __init__(self, photos: Sequence[CaptionedPhoto], transform: PreprocessConfig, seed: int) -> None:
        self.photos, self.transform, self.seed, self.epoch = list(photos), transform, seed, 0

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        photo = self.photos[index]
        caption = random.Random(self.seed * 1_000_003 + self.epoch * 7_919 + index).choice(photo.captions)
        return self.transform(decode_photo(photo.path).image), caption


class CollatePairs:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, items: list[tuple[torch.Tensor, str]]) -> Batch:
        return torch.stack([p for p, _ in items]), self.tokenizer([c for _, c in items])


def make_loader(
    encoder: ClipEncoder, photos: Sequence[CaptionedPhoto], opts: LoaderOptions, env: Distributed
) -> tuple[DataLoader[Any], CaptionPairs]:
    dataset = CaptionPairs(photos, encoder.preprocess, opts.seed)
    if len(dataset) < opts.batch_size * env.world_size:
        raise FinetuneError(
            f"{len(dataset)} training photos cannot fill one batch of {opts.batch_size} on "
            f"{env.world_size} process(es): lower --batch-size"
        )
    sampler: DistributedSampler[Any] | None = None
    if env.world_size > 1:
        sampler = DistributedSampler(dataset, env.world_size, env.rank, seed=opts.seed)
    loader: DataLoader[Any] = DataLoader(
        dataset,
        batch_size=opts.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        drop_last=True,  # contrastive batches of equal size
        num_workers=opts.workers,
        collate_fn=CollatePairs(encoder.tokenizer),
        pin_memory=env.device.type == "cuda",
        generator=torch.Generator().manual_seed(opts.seed),
    )
    return loader, dataset
