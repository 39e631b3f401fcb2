"""The joint family behind the common Encoder interface."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from models.checkpoint import Checkpoint
from models.encoder import Encoder, Reranker, l2_normalise
from models.joint.config import JointConfig, ServingConfig
from models.joint.model import JointModel
from models.preprocess import PreprocessConfig
from models.query_bank import QueryBank, split_bank_tensors


class JointEncoder(Encoder):
    family = "joint"

    def __init__(
        self,
        name: str,
        model: JointModel,
        digest: str,
        device: torch.device,
        query_bank: QueryBank | None = None,
    ) -> None:
        self.name = name
        self.model = model.to(device).eval()
        self.dim = model.embed_dim
        # config "test_time": how photos are embedded once trained — a resolution other than the
        # training one (a CNN trained at 224 px sees more detail at 256-288 px), the mean of the
        # photo and its mirror image, and further resolutions averaged in ("extra_sizes": each made
        # from the image_size pixels by an antialiased bicubic resize, so photos are decoded once).
        # Training always uses "preprocess".
        test_time = model.config.test_time or ServingConfig()
        preprocess = model.config.preprocess
        if test_time.image_size is not None:
            preprocess = preprocess.model_copy(update={"image_size": test_time.image_size})
        self.preprocess = preprocess
        self.hflip = test_time.hflip
        self.extra_sizes = list(test_time.extra_sizes)
        self.query_bank = query_bank
        self.checkpoint_digest = digest
        self.device = device
        self.logit_scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
        self.reranker = JointReranker(self.model, preprocess, device) if model.reranker is not None else None

    @torch.inference_mode()
    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        pixels = pixels.to(self.device)
        scales = [pixels] + [
            torch.nn.functional.interpolate(
                pixels, size=(size, size), mode="bicubic", antialias=True, align_corners=False
            )
            for size in self.extra_sizes
        ]
        views = scales + [scale.flip(-1) for scale in scales] if self.hflip else scales  # + mirror images
        vectors = [torch.nn.functional.normalize(self.model.encode_image(v).float(), dim=-1) for v in views]
        return l2_normalise(torch.stack(vectors).sum(dim=0))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = [
            l2_normalise(self.model.encode_text(texts[i : i + batch_size]))
            for i in range(0, len(texts), batch_size)
        ]
        return np.concatenate(chunks)


class JointReranker(Reranker):
    """The joint model's cross-attention re-ranker (config "reranker"; models/joint/reranker.py)."""

    def __init__(self, model: JointModel, preprocess: PreprocessConfig, device: torch.device) -> None:
        self.model = model
        self.preprocess = preprocess
        self.device = device
        self.top_n = model.config.reranker.top_n if model.config.reranker is not None else 10

    @torch.inference_mode()
    def rerank(self, query: str, images: Sequence[Image.Image]) -> np.ndarray:
        """The patch grids are recomputed from the photos: the index stores pooled vectors only."""
        if not images:
            return np.zeros(0, dtype=np.float32)
        pixels = torch.stack([self.preprocess(img) for img in images]).to(self.device)  # (n, 3, H, W)
        grids = self.model.image_tower.forward_grid(pixels)  # (n, C, 7, 7)
        logits = self.model.rerank_logits([query] * len(images), grids)
        return logits.float().cpu().numpy()


def build_joint_encoder(
    name: str, config: JointConfig, checkpoint: Checkpoint, device: torch.device
) -> JointEncoder:
    model = JointModel(config)
    model.load_checkpoint_state(split_bank_tensors(checkpoint.state_dict))
    bank = QueryBank.from_checkpoint(config.query_bank, checkpoint.state_dict)
    return JointEncoder(name, model, checkpoint.digest, device, bank)
