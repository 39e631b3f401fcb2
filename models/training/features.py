"""Cached outputs of frozen towers, so heads train in seconds per epoch on a CPU.

Cache files are keyed by the tower spec, the preprocessing and the exact inputs, so a change in
any of them computes afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from rich.progress import Progress
from torch import nn

from models.encoder import PreprocessConfig
from models.loading import iterate_photo_batches

log = logging.getLogger(__name__)

VIEWS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "original": lambda img: img,
    "hflip": lambda img: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
}


def _cache_path(cache_dir: Path, kind: str, spec: dict[str, Any], items: Sequence[str]) -> Path:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for item in items:
        digest.update(item.encode())
        digest.update(b"\0")
    return cache_dir / f"{kind}-{digest.hexdigest()[:16]}.npy"


@torch.inference_mode()
def image_features(
    tower: nn.Module,
    preprocess: PreprocessConfig,
    paths: Sequence[Path],
    *,
    spec: dict[str, Any],
    cache_dir: Path,
    views: Sequence[str] = ("original",),
    device: torch.device,
    batch_size: int = 64,
    workers: int = 0,
) -> np.ndarray:
    """→ (len(views), len(paths), feature_dim) float32 tower outputs."""
    key = {"tower": spec, "preprocess": preprocess.to_dict(), "views": list(views)}
    path = _cache_path(cache_dir, "image", key, [str(p) for p in paths])
    if path.is_file():
        return np.load(path)
    tower = tower.to(device).eval()
    out = np.zeros((len(views), len(paths), tower.feature_dim), dtype=np.float32)
    with Progress(transient=True) as progress:
        for v, view in enumerate(views):
            flip = VIEWS[view]
            task = progress.add_task(f"image features ({view})", total=len(paths))
            batches = iterate_photo_batches(
                paths,
                lambda img, flip=flip: preprocess(flip(img)),
                batch_size=batch_size,
                workers=workers,
            )
            for batch in batches:
                if batch.failures:
                    raise ValueError(f"training photo failed to load: {batch.failures[:3]}")
                feats = tower(batch.pixels.to(device)).float().cpu().numpy()
                out[v, batch.indices] = feats
                progress.advance(task, len(batch.indices))
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


@torch.inference_mode()
def text_features(
    tower: nn.Module,
    texts: Sequence[str],
    *,
    spec: dict[str, Any],
    cache_dir: Path,
    device: torch.device,
    batch_size: int = 256,
) -> np.ndarray:
    """→ (len(texts), feature_dim) float32 tower outputs."""
    path = _cache_path(cache_dir, "text", {"tower": spec}, texts)
    if path.is_file():
        return np.load(path)
    tower = tower.to(device).eval()
    out = np.zeros((len(texts), tower.feature_dim), dtype=np.float32)
    with Progress(transient=True) as progress:
        task = progress.add_task("text features", total=len(texts))
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[start : start + len(chunk)] = tower(chunk).float().cpu().numpy()
            progress.advance(task, len(chunk))
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out
