"""The real encoder with something done at each photo batch, as happens to a real run."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from models.encoder import Encoder


class EncoderWithHook(Encoder):
    """Delegates to `inner`; `before_batch(n)` runs before the n-th photo batch (from 0) is embedded."""

    def __init__(self, inner: Encoder, before_batch: Callable[[int], None]) -> None:
        self.inner, self.before_batch, self.batches = inner, before_batch, 0
        self.name, self.family, self.dim = inner.name, inner.family, inner.dim
        self.preprocess, self.checkpoint_digest, self.device = (
            inner.preprocess,
            inner.checkpoint_digest,
            inner.device,
        )

    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        self.before_batch(self.batches)
        self.batches += 1
        return self.inner.encode_image_batch(pixels)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        return self.inner.encode_texts(texts, batch_size)
