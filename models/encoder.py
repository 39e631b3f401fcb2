"""The one interface every model family implements.

Vectors are float32, L2-normalised, so similarity is the inner product.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from models.query_bank import QueryBank

ResizeMode = Literal["squash", "shortest_crop"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How a decoded RGB photo becomes the tensor a model sees; travels with the checkpoint."""

    image_size: int = 224
    resize: ResizeMode = "squash"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for key in ("mean", "std"):
            if key in known:
                known[key] = tuple(float(x) for x in known[key])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """An RGB PIL image → normalised tensor (3, size, size)."""
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        size = self.image_size
        if self.resize == "squash":
            image = image.resize((size, size), resample)
        else:
            width, height = image.size
            scale = size / min(width, height)
            image = image.resize(
                (max(size, round(width * scale)), max(size, round(height * scale))), resample
            )
            left = (image.width - size) // 2
            top = (image.height - size) // 2
            image = image.crop((left, top, left + size, top + size))
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # (H, W, 3)
        tensor = torch.from_numpy(array).permute(2, 0, 1)  # (3, H, W)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (tensor - mean) / std


class Reranker(ABC):
    """Re-orders a text query's best candidates by a finer (and slower) match than the cosine."""

    top_n: int  # how many of the dual encoder's best candidates it re-orders

    @abstractmethod
    def rerank(self, query: str, images: Sequence[Image.Image]) -> np.ndarray:
        """A text query and its candidate photos (decoded RGB) → (n,) match logits, higher = better."""


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

    def suggested_batch_size(self) -> int:
        """Photos per forward pass when the user sets none; families override with a memory estimate."""
        return 256 if self.device.type == "cuda" else 32

    @property
    def key(self) -> str:
        """Identifies the exact weights: an index built with one key never takes another's vectors."""
        return f"{self.name}@{self.checkpoint_digest[:12]}"

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
