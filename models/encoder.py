"""The one interface every model family implements.

Vectors are float32, L2-normalised, so similarity is the inner product.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from models.preprocess import PreprocessConfig

if TYPE_CHECKING:
    from models.query_bank import QueryBank


class Reranker(ABC):
    """Re-orders a text query's best candidates by a finer (and slower) match than the cosine."""

    top_n: int  # how many of the dual encoder's best candidates it re-orders

    @abstractmethod
    def rerank(self, query: str, images: Sequence[Image.Image], scores: Sequence[float]) -> np.ndarray:
        """A text query, its candidate photos (decoded RGB) and the score each candidate was ranked by
        (cosine, less its query-bank offset where the model has a bank) → (n,) match logits, higher =
        better. A re-ranker that corrects the dual ranking adds to those scores, so that it re-orders
        what the user would have seen, not another ranking."""


class Encoder(ABC):
    """Embeds photos and texts into one space. Subclasses implement the tensor-level calls."""

    name: str
    family: str
    dim: int
    preprocess: PreprocessConfig
    checkpoint_digest: str
    device: torch.device
    # exp(learned temperature): zero-shot probabilities are softmax(logit_scale * cosine). 100.0 is
    # CLIP's usual (clamped) value; families that learn one (clip) set their own.
    logit_scale: float = 100.0
    # Query-bank normalisation (models/query_bank.py), for checkpoints that carry a bank: text→photo
    # and photo→caption hits are ranked by cosine minus the hit's hubness offset.
    query_bank: QueryBank | None = None
    # An optional cross-encoder that re-orders the top text→photo candidates; None for most models.
    reranker: Reranker | None = None
    # The photosearch checkpoint file the weights came from, when there is one: files that travel
    # beside it (the caption bank, models/caption_bank.py) are found from it.
    checkpoint_path: Path | None = None
    # Whether "quantize auto" may embed photos with the int8 image tower when a calibration fits the
    # weights; a checkpoint whose int8 presets lose too much says false and is served in fp32.
    int8_by_default: bool = True
    # Whether "quantize auto" also runs the text tower in int8 (on a CPU whose int8 products do not
    # saturate): a checkpoint whose fp32 text query is too slow and whose int8 one keeps recall says true.
    text_int8_by_default: bool = False

    def suggested_batch_size(self) -> int:
        """Photos per forward pass when the user sets none; families override with a memory estimate."""
        return 256 if self.device.type == "cuda" else 32

    @property
    def weights_key(self) -> str:
        """The exact weights alone: every key of this encoder starts with it, however it embeds photos."""
        return f"{self.name}@{self.checkpoint_digest[:12]}"

    @property
    def key(self) -> str:
        """Identifies the exact weights: an index built with one key never takes another's vectors."""
        return self.weights_key

    @abstractmethod
    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        """(batch, 3, H, W) preprocessed pixels → (batch, dim) unit vectors."""

    @abstractmethod
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """n texts → (n, dim) unit vectors."""

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """n decoded RGB photos → (n, dim) unit vectors."""
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(images), batch_size):
            pixels = torch.stack([self.preprocess(img) for img in images[start : start + batch_size]])
            chunks.append(self.encode_image_batch(pixels))
        return np.concatenate(chunks)


def l2_normalise(vectors: torch.Tensor) -> np.ndarray:
    """float tensor (n, d) → float32 unit-length rows as numpy."""
    vectors = torch.nn.functional.normalize(vectors.float(), dim=-1)
    return vectors.detach().cpu().numpy().astype(np.float32, copy=False)


# What decides how an encoder embeds photos beyond its weights (the joint family's test-time preset and
# the towers' precision); the attributes an encoder lacks are skipped.
SERVING_STATE = ("preset", "preprocess", "hflip", "extra_sizes", "quantize")


@contextmanager
def serving_kept(encoder: Encoder) -> Iterator[Encoder]:
    """Within the block the encoder may be switched to other presets or precisions; afterwards it embeds
    exactly as before (its key included)."""
    saved = {name: getattr(encoder, name) for name in SERVING_STATE if hasattr(encoder, name)}
    try:
        yield encoder
    finally:
        for name, value in saved.items():
            setattr(encoder, name, value)
