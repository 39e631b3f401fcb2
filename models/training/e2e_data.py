"""Data for end-to-end training: photos decoded per batch with augmentation, captions chosen at random.

All randomness of an item comes from (seed, epoch, photo index), so a resumed run, or a run with
more loader workers, sees exactly the same batches."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from models.images import decode_photo
from models.joint.config import JointConfig, SentenceEncoderSpec
from models.joint.vocab import build_vocab
from models.preprocess import PreprocessConfig
from models.training.data import CaptionedPhoto, SetSampling


def with_vocab(config: JointConfig, photos: list[CaptionedPhoto]) -> JointConfig:
    """The config with a vocabulary built from these (training) photos' captions, if its text tower needs
    one and has none yet; the vocabulary then travels with the checkpoint."""
    spec = config.text_tower
    if isinstance(spec, SentenceEncoderSpec) or spec.vocab:
        return config
    vocab = build_vocab([c for p in photos for c in p.captions], spec.min_count)
    return config.replace(text_tower=spec.model_copy(update={"vocab": tuple(vocab)}))


def random_resized_crop(
    image: Image.Image, size: int, rng: random.Random, scale: tuple[float, float] = (0.5, 1.0)
) -> Image.Image:
    """A random crop of scale × the area and aspect 3:4..4:3, resized to size × size (as torchvision)."""
    width, height = image.size
    for _ in range(10):
        area = width * height * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        w, h = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
    return image.resize((size, size), Image.Resampling.BILINEAR)


@dataclass
class Batch:
    indices: torch.Tensor  # (batch,) photo positions
    views: torch.Tensor  # (batch,) 0 original, 1 flipped (used with cached features of frozen towers)
    pixels: torch.Tensor | None  # (batch, 3, size, size) when photos are decoded
    captions: list[list[str]]  # captions[slot][item]: one or two distinct captions per photo


class TrainPhotos(Dataset[tuple[int, int, torch.Tensor | None, tuple[str, ...]]]):
    """preprocess None: no decoding (the image tower is frozen and cached); augment False: validation."""

    def __init__(
        self,
        photos: list[CaptionedPhoto],
        preprocess: PreprocessConfig | None,
        *,
        seed: int,
        augment: bool = True,
        captions_per_item: int = 1,
    ) -> None:
        self.photos, self.preprocess, self.seed = photos, preprocess, seed
        self.augment, self.captions_per_item = augment, captions_per_item
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.photos)

    def __getitem__(self, index: int) -> tuple[int, int, torch.Tensor | None, tuple[str, ...]]:
        rng = random.Random(f"{self.seed}-{self.epoch}-{index}")
        photo = self.photos[index]
        captions = tuple(rng.sample(photo.captions, min(self.captions_per_item, len(photo.captions))))
        if len(captions) < self.captions_per_item:  # a photo with one caption pairs it with itself
            captions = captions * self.captions_per_item
        flip = int(self.augment and rng.random() < 0.5)
        if self.preprocess is None:
            return index, flip, None, captions
        image = decode_photo(photo.path).image
        if self.augment:
            image = random_resized_crop(image, self.preprocess.image_size, rng)
            if flip:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return index, flip, self.preprocess(image), captions


def _collate(items: list[tuple[int, int, torch.Tensor | None, tuple[str, ...]]]) -> Batch:
    pixels = [p for _, _, p, _ in items if p is not None]
    slots = len(items[0][3])
    return Batch(
        torch.tensor([i for i, _, _, _ in items]),
        torch.tensor([v for _, v, _, _ in items]),
        torch.stack(pixels) if pixels else None,
        [[caps[s] for _, _, _, caps in items] for s in range(slots)],
    )


def batches(
    dataset: TrainPhotos,
    *,
    epoch: int,
    batch_size: int,
    shuffle: bool,
    workers: int,
    sampling: SetSampling | None = None,
) -> DataLoader:
    """A loader for one epoch; the order depends only on (seed, epoch). sampling: the data sets laid end to
    end in the dataset, drawn by weight (default: one set, each photo once)."""
    dataset.epoch = epoch
    generator = torch.Generator().manual_seed(dataset.seed * 100_003 + epoch)
    sampling = sampling or SetSampling((len(dataset),), (1.0,))
    order = sampling.order(generator).tolist() if shuffle else range(len(dataset))
    return DataLoader(dataset, batch_size=batch_size, sampler=order, num_workers=workers, collate_fn=_collate)
