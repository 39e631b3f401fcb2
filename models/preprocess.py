"""How a decoded RGB photo becomes the tensor a model sees; travels with the checkpoint."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from models.schema import StrictConfig

ResizeMode = Literal["squash", "shortest_crop"]


class PreprocessConfig(StrictConfig):
    """A model config's "preprocess" section, and the transform it describes."""

    image_size: int = 224
    resize: ResizeMode = "squash"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)
    interpolation: Literal["bicubic", "bilinear"] = "bicubic"

    def to_dict(self) -> dict[str, Any]:
        """Every setting (defaults included): what feature caches are keyed by."""
        return self.model_dump()

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
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        # (3, H, W), contiguous, normalised in place: the same float32 operations as (x / 255 - mean) / std
        array = np.ascontiguousarray(np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1))
        np.divide(array, np.float32(255.0), out=array)
        array -= np.asarray(self.mean, dtype=np.float32).reshape(3, 1, 1)
        array /= np.asarray(self.std, dtype=np.float32).reshape(3, 1, 1)
        return torch.from_numpy(array)
