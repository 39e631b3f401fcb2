"""Parallel decode + preprocess of photo files for batch embedding (indexer, training, evaluation).

Failures do not stop a batch: each item comes back with either pixels or the reason it failed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from models.images import DEFAULT_MAX_PIXELS, DecodedPhoto, ImageDecodeError, decode_photo


@dataclass
class LoadedBatch:
    indices: list[int]  # positions in the input list that decoded
    pixels: torch.Tensor  # (len(indices), 3, H, W)
    photos: list[DecodedPhoto]  # decoded metadata (images dropped to save memory)
    failures: list[tuple[int, str]]  # (position, reason)


class _PhotoFiles(Dataset[tuple[int, torch.Tensor | None, DecodedPhoto | str]]):
    def __init__(
        self, paths: Sequence[Path], transform: Callable[..., torch.Tensor], max_pixels: int
    ) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, DecodedPhoto | str]:
        try:
            decoded = decode_photo(self.paths[index], self.max_pixels)
            pixels = self.transform(decoded.image)
        except ImageDecodeError as exc:
            return index, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad photo must not stop a batch
            return index, None, f"could not preprocess: {type(exc).__name__}: {exc}"
        light = DecodedPhoto(
            decoded.image.resize((1, 1)),
            decoded.width,
            decoded.height,
            decoded.taken_at,
            decoded.camera_make,
            decoded.camera_model,
            decoded.format,
        )
        return index, pixels, light


def _collate(items: list[tuple[int, torch.Tensor | None, DecodedPhoto | str]]) -> LoadedBatch:
    good = [(i, p, d) for i, p, d in items if p is not None and isinstance(d, DecodedPhoto)]
    failures = [(i, d) for i, p, d in items if p is None and isinstance(d, str)]
    pixels = torch.stack([p for _, p, _ in good]) if good else torch.zeros(0)
    return LoadedBatch([i for i, _, _ in good], pixels, [d for _, _, d in good], failures)


def iterate_photo_batches(
    paths: Sequence[Path],
    transform: Callable[..., torch.Tensor],
    *,
    batch_size: int = 32,
    workers: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[LoadedBatch]:
    loader = DataLoader(
        _PhotoFiles(paths, transform, max_pixels),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        persistent_workers=False,
    )
    yield from loader
