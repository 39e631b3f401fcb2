"""Cached outputs of frozen towers, so heads train in seconds per epoch on a CPU.

Cache files are keyed by the tower spec, the preprocessing and the exact inputs, so a change in
any of them computes afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress
from torch import nn

from models.loading import iterate_photo_batches
from models.preprocess import PreprocessConfig
from models.schema import StrictConfig

log = logging.getLogger(__name__)


def _random_crop(img: Image.Image) -> Image.Image:
    """A random resized crop: 50–100% of the area, aspect 3:4–4:3, flipped half the time."""
    area = img.width * img.height * random.uniform(0.5, 1.0)
    aspect = math.exp(random.uniform(math.log(3 / 4), math.log(4 / 3)))
    width = min(img.width, round(math.sqrt(area * aspect)))
    height = min(img.height, round(math.sqrt(area / aspect)))
    left, top = random.randint(0, img.width - width), random.randint(0, img.height - height)
    crop = img.crop((left, top, left + width, top + height))
    return crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if random.random() < 0.5 else crop


VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "original": lambda img: img,
    "hflip": lambda img: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "crop1": _random_crop,
    "crop2": _random_crop,
    "crop3": _random_crop,
}
RANDOM_VIEWS = tuple(name for name, change in VIEWS.items() if change is _random_crop)  # differ by seed


def cache_path(cache_dir: Path, kind: str, spec: dict[str, Any], items: Sequence[str]) -> Path:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for item in items:
        digest.update(item.encode())
        digest.update(b"\0")
    return cache_dir / f"{kind}-{digest.hexdigest()[:16]}.npy"


def _frozen(tower: nn.Module) -> Callable[..., Any]:
    return getattr(tower, "forward_frozen", tower)


def _store(array: torch.Tensor) -> np.ndarray:
    """Pooled vectors stay float32; bigger per-item tensors (grids, token states) go float16."""
    return array.float().cpu().numpy() if array.dim() == 2 else array.half().cpu().numpy()


@torch.inference_mode()
def image_features(
    tower: nn.Module,
    preprocess: PreprocessConfig,
    paths: Sequence[Path],
    *,
    spec: StrictConfig,
    cache_dir: Path,
    views: Sequence[str] = ("original",),
    device: torch.device,
    batch_size: int = 32,
    workers: int = 0,
    crop_seed: int = 0,
) -> np.ndarray:
    """→ (len(views), len(paths), *frozen_shape): what the tower's frozen part outputs per view.

    crop_seed: which random crops the "crop" views take; another seed gives a further stage of
    training views it has not seen. Views without randomness are the same for every seed."""
    key: dict[str, Any] = {"tower": spec.to_json(), "preprocess": preprocess.to_dict(), "views": list(views)}
    if not any(view in RANDOM_VIEWS for view in views):
        crop_seed = 0
    if crop_seed:  # seed 0 keeps the cache keys written before seeds were a choice
        key["crop_seed"] = crop_seed
    path = cache_path(cache_dir, "image", key, [str(p) for p in paths])
    if path.is_file():
        return np.load(path, mmap_mode="r")
    tower = tower.to(device).eval()
    # crops are seeded, and the caller's random streams stay as they were whether or not the cache hit
    # (a DataLoader draws its seed from torch's): a resumed run then repeats the straight one exactly
    caller_random, caller_torch = random.getstate(), torch.get_rng_state()
    random.seed(crop_seed)
    try:
        out = _extract(tower, preprocess, paths, views, device, batch_size, workers)
    finally:
        random.setstate(caller_random)
        torch.set_rng_state(caller_torch)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    del out  # read back mapped, as a later run reads it: the pages are the OS's to drop, not ours to hold
    return np.load(path, mmap_mode="r")


def _extract(
    tower: nn.Module,
    preprocess: PreprocessConfig,
    paths: Sequence[Path],
    views: Sequence[str],
    device: torch.device,
    batch_size: int,
    workers: int,
) -> np.ndarray:
    out: np.ndarray | None = None
    with Progress(transient=True) as progress:
        for v, view in enumerate(views):
            change = VIEWS[view]
            task = progress.add_task(f"image features ({view})", total=len(paths))
            batches = iterate_photo_batches(
                paths,
                lambda img, change=change: preprocess(change(img)),
                batch_size=batch_size,
                workers=workers,
            )
            for batch in batches:
                if batch.failures:
                    raise ValueError(f"training photo failed to load: {batch.failures[:3]}")
                feats = _store(_frozen(tower)(batch.pixels.to(device)))
                if out is None:
                    out = np.zeros((len(views), len(paths), *feats.shape[1:]), dtype=feats.dtype)
                out[v, batch.indices] = feats
                progress.advance(task, len(batch.indices))
    assert out is not None
    return out


@torch.inference_mode()
def text_features(
    tower: nn.Module,
    texts: Sequence[str],
    *,
    spec: StrictConfig,
    cache_dir: Path,
    device: torch.device,
    batch_size: int = 256,
) -> tuple[np.ndarray, np.ndarray | None]:
    """→ (len(texts), dim) pooled vectors and None, or for a partly fine-tuned tower the hidden
    states below its tuned layers (len(texts), T, dim) float16 and their token mask (len(texts), T)."""
    path = cache_path(cache_dir, "text", {"tower": spec.to_json()}, texts)
    mask_path = path.with_suffix(".mask.npy")
    if path.is_file():
        return np.load(path, mmap_mode="r"), (np.load(mask_path) if mask_path.is_file() else None)
    tower = tower.to(device).eval()
    chunks: list[tuple[np.ndarray, np.ndarray | None]] = []
    with Progress(transient=True) as progress:
        task = progress.add_task("text features", total=len(texts))
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            result = _frozen(tower)(chunk)
            if isinstance(result, tuple):
                chunks.append((_store(result[0]), result[1].bool().cpu().numpy()))
            else:
                chunks.append((_store(result), None))
            progress.advance(task, len(chunk))
    features, mask = _stack(chunks)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, features)
    if mask is not None:
        np.save(mask_path, mask)
    del features
    return np.load(path, mmap_mode="r"), mask


def _stack(chunks: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Concatenate chunks, padding token dimensions to the longest chunk."""
    if chunks[0][1] is None:
        return np.concatenate([c for c, _ in chunks]), None
    longest = max(c.shape[1] for c, _ in chunks)
    features = np.concatenate([np.pad(c, ((0, 0), (0, longest - c.shape[1]), (0, 0))) for c, _ in chunks])
    masks = [m for _, m in chunks if m is not None]
    mask = np.concatenate([np.pad(m, ((0, 0), (0, longest - m.shape[1]))) for m in masks])
    return features, mask
