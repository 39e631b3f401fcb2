"""The joint family behind the common Encoder interface."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from models.checkpoint import Checkpoint
from models.encoder import Encoder, Reranker, l2_normalise
from models.joint.config import (
    JointConfig,
    PresetName,
    ServingConfig,
    default_preset,
    serving_preset,
)
from models.joint.model import JointModel
from models.onnx_runtime import QUANTIZE_KEYS, OnnxTowers
from models.preprocess import PreprocessConfig
from models.query_bank import QueryBank, split_bank_tensors


class JointEncoder(OnnxTowers, Encoder):
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
        # Training always uses "preprocess". A named preset (apply_preset) replaces it.
        self.shipped = self._resolved(model.config.test_time or ServingConfig())
        self.int8_by_default = (model.config.test_time or ServingConfig()).int8_by_default
        self.text_int8_by_default = (model.config.test_time or ServingConfig()).text_int8_by_default
        self.preset: PresetName = "best"
        self.preprocess, self.hflip, self.extra_sizes = self.shipped
        self.query_bank = query_bank
        self.checkpoint_digest = digest
        self.device = device
        self.logit_scale = float(model.logit_scale.detach().exp().clamp(max=100.0))
        self.reranker = (
            JointReranker(self.model, model.config.preprocess, device) if model.reranker is not None else None
        )

    def _resolved(self, serving: ServingConfig) -> tuple[PreprocessConfig, bool, list[int]]:
        """A test-time section → (preprocess at its resolution, mirror on, extra resolutions)."""
        preprocess = self.model.config.preprocess
        if serving.image_size is not None:
            preprocess = preprocess.model_copy(update={"image_size": serving.image_size})
        return preprocess, serving.hflip, list(serving.extra_sizes)

    def apply_preset(self, preset: PresetName | None = None) -> JointEncoder:
        """Embed photos with a named test-time preset (models/joint/config.py; None: the default for the
        image tower's precision)."""
        self.preset = preset or default_preset(self.model.config, int8=self.quantize in ("image", "all"))
        self.preprocess, self.hflip, self.extra_sizes = self._resolved(
            serving_preset(self.model.config, self.preset)
        )
        return self

    @property
    def key(self) -> str:
        """The weights, plus the preset when it is not the shipped test-time setting and int8 when
        quantized: photos embedded another way never share an index with these."""
        served = (self.preprocess, self.hflip, self.extra_sizes)
        preset = "" if served == self.shipped else f"+{self.preset}"
        return f"{self.weights_key}{preset}{QUANTIZE_KEYS[self.quantize]}"

    @torch.inference_mode()
    def encode_image_batch(self, pixels: torch.Tensor) -> np.ndarray:
        vectors = [self._embed_view(v) for v in self.image_views(pixels.to(self.device))]
        return l2_normalise(torch.stack(vectors).sum(dim=0))

    def image_views(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """(batch, 3, H, W) at the preset's resolution → what the image tower sees: each resolution
        of the preset (resized from these pixels), and each mirrored when the preset mirrors."""
        scales = [pixels] + [
            torch.nn.functional.interpolate(
                pixels, size=(size, size), mode="bicubic", antialias=True, align_corners=False
            )
            for size in self.extra_sizes
        ]
        return scales + [scale.flip(-1) for scale in scales] if self.hflip else scales

    def _embed_view(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, dim) unit vectors, through ONNX Runtime when it is on."""
        if self.image_session is not None:
            return torch.from_numpy(self.image_session.run(pixels.cpu().contiguous().numpy()))
        return torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = [self._embed_texts(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(chunks)

    def _embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if self.text_session is None:
            return l2_normalise(self.model.encode_text(texts))
        tokens = self.model.text_tower._tokens(texts)  # the tokenizer stays outside the graph
        ids = tokens["input_ids"]
        named = {
            "input_ids": ids,
            "attention_mask": tokens["attention_mask"],
            "token_type_ids": tokens.get("token_type_ids", torch.zeros_like(ids)),
        }
        # the graph's own inputs, in order: an encoder without token types (MPNet) has no such input
        session = self.text_session.opened()
        arrays = [named[name].cpu().numpy().astype(np.int64) for name in session.inputs]
        return l2_normalise(torch.from_numpy(session.run(*arrays)))


class JointReranker(Reranker):
    """The joint model's cross-attention re-ranker (config "reranker"; models/joint/reranker.py)."""

    def __init__(self, model: JointModel, preprocess: PreprocessConfig, device: torch.device) -> None:
        # the resolution it was trained at (its patch grids' size), whatever preset embeds the photos
        self.model = model
        self.preprocess = preprocess
        self.device = device
        self.top_n = model.config.reranker.top_n if model.config.reranker is not None else 10

    @torch.inference_mode()
    def rerank(self, query: str, images: Sequence[Image.Image], scores: Sequence[float]) -> np.ndarray:
        """The patch grids are recomputed from the photos: the index stores pooled vectors only."""
        if len(scores) != len(images):
            raise ValueError(f"one score per candidate photo: {len(images)} photos, {len(scores)} scores")
        if not images:
            return np.zeros(0, dtype=np.float32)
        pixels = torch.stack([self.preprocess(img) for img in images]).to(self.device)  # (n, 3, H, W)
        grids = self.model.image_tower.forward_grid(pixels)  # (n, C, h, w)
        served = torch.tensor(scores, dtype=torch.float32)
        logits = self.model.rerank_logits([query] * len(images), grids, served)
        return logits.float().cpu().numpy()


def build_joint_encoder(
    name: str, config: JointConfig, checkpoint: Checkpoint, device: torch.device
) -> JointEncoder:
    model = JointModel(config)
    model.load_checkpoint_state(split_bank_tensors(checkpoint.state_dict))
    bank = QueryBank.from_checkpoint(config.query_bank, checkpoint.state_dict)
    return JointEncoder(name, model, checkpoint.digest, device, bank)
