"""JointModel: two towers, two projection heads into one shared space, a learned temperature."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from models.joint.config import JointConfig, RerankerConfig
from models.joint.reranker import CrossAttentionReranker
from models.joint.towers import build_image_tower, build_text_tower


class ProjectionHead(nn.Module):
    """Linear projection plus a residual GELU MLP and LayerNorm: (batch, in_dim) → (batch, out_dim)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.input_dropout = nn.Dropout(dropout)
        self.project = nn.Linear(in_dim, out_dim)
        self.mlp = nn.Sequential(
            nn.GELU(), nn.Linear(out_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        projected = self.project(self.input_dropout(features))
        return self.norm(projected + self.mlp(projected))


class JointModel(nn.Module):
    image_tower: Any  # towers differ by config; each has feature_dim, forward, forward_frozen/trainable
    text_tower: Any

    def __init__(self, config: JointConfig, pretrained_towers: bool = True) -> None:
        super().__init__()
        self.config = config
        self.image_tower = build_image_tower(config.image_tower, pretrained_towers)
        self.text_tower = build_text_tower(config.text_tower, pretrained_towers)
        head = (config.embed_dim, config.head.hidden, config.head.dropout)
        self.image_head = ProjectionHead(self.image_tower.feature_dim, *head)
        self.text_head = ProjectionHead(self.text_tower.feature_dim, *head)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.loss.init_temperature)))
        self.reranker: CrossAttentionReranker | None = None
        if config.reranker is not None:  # optional cross-attention re-ranker (models/joint/reranker.py)
            dims = (self.text_tower.feature_dim, self.image_tower.feature_dim)
            self.reranker = CrossAttentionReranker(*dims, config.reranker)

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def embed_image_features(self, features: torch.Tensor) -> torch.Tensor:
        """(batch, tower_dim) → (batch, embed_dim), unit length."""
        return F.normalize(self.image_head(features), dim=-1)

    def embed_text_features(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(features), dim=-1)

    def encode_image(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, embed_dim), unit length."""
        return self.embed_image_features(self.image_tower(pixels))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        return self.embed_text_features(self.text_tower(texts))

    def rerank_logits(
        self, texts: Sequence[str], grids: torch.Tensor, served: torch.Tensor | None = None
    ) -> torch.Tensor:
        """n texts, each with its candidate's patch grid (n, C, h, w) → (n,) logits, higher = better.
        served: each candidate's ranking score as the search ranked it (cosine, less its query-bank
        offset where the model has a bank), which a residual re-ranker corrects; None: the cosine of the
        text with the grid's pooled vector (no offset)."""
        if self.reranker is None or not hasattr(self.text_tower, "forward_tokens"):
            raise ValueError("this model has no re-ranker (config 'reranker') or no token-level text tower")
        if served is not None and served.shape != (len(texts),):
            raise ValueError(
                f"one served score per candidate: {len(texts)} texts, scores {tuple(served.shape)}"
            )
        unique = sorted(set(texts))  # a query's candidates share its text: its tokens are computed once
        rows = [unique.index(t) for t in texts]
        tokens, mask = self.text_tower.forward_tokens(unique)  # (n_unique, T, text_dim), (n_unique, T)
        logits: torch.Tensor = self.reranker(tokens[rows], mask[rows], grids)
        if self.reranker.residual:  # a correction to the dual encoder's own ranking
            if served is None:
                text = self.encode_text(unique)[rows]
                served = (text * self.embed_image_features(grids.mean(dim=(2, 3)))).sum(dim=-1)
            logits = logits + self.scaled(served.to(logits.device, logits.dtype))
        return logits

    def dual_logits(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Matching rows of unit text and photo vectors → (n,) the dual encoder's logits."""
        return self.scaled((text * image).sum(dim=-1))

    def scaled(self, scores: torch.Tensor) -> torch.Tensor:
        """Cosine-like ranking scores → logits, through the learned temperature."""
        return self.logit_scale.exp().clamp(max=100.0) * scores

    def add_reranker(self, spec: RerankerConfig) -> JointModel:
        """A new, untrained re-ranker (and the config that names it) on this trained dual encoder."""
        self.config = self.config.replace(reranker=spec)
        dims = (self.text_tower.feature_dim, self.image_tower.feature_dim)
        self.reranker = CrossAttentionReranker(*dims, spec)
        return self

    def _tower_keys(self, name: str, tower: Any) -> list[str]:
        """State-dict keys of a tower that training changes (pretrained wheels supply the rest)."""
        keys = [k for k in self.state_dict() if k.startswith(f"{name}.")]
        if hasattr(tower, "trainable_prefixes"):
            prefixes = tuple(f"{name}.{p}" for p in tower.trainable_prefixes())
            return [k for k in keys if prefixes and k.startswith(prefixes)]
        return [] if getattr(tower, "frozen", False) else keys

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """Everything training can change: heads, temperature, re-ranker and any tuned tower part."""
        state = self.state_dict()
        towers = set(self._tower_keys("image_tower", self.image_tower))
        towers |= set(self._tower_keys("text_tower", self.text_tower))
        return {
            k: v for k, v in state.items() if k in towers or not k.startswith(("image_tower.", "text_tower."))
        }

    # --- cached training: frozen tower outputs in, unit embeddings out -------------------------------
    def embed_image_frozen(self, frozen: torch.Tensor) -> torch.Tensor:
        """The image tower's cacheable output (forward_frozen) → (batch, embed_dim), unit length."""
        return self.embed_image_features(self.image_tower.forward_trainable(frozen))

    def embed_text_frozen(self, frozen: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        features = self.text_tower.forward_trainable(frozen, mask) if mask is not None else frozen
        return self.embed_text_features(features)

    def load_checkpoint_state(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.checkpoint_state())
        missing = sorted(expected - set(state))
        unexpected = sorted(set(state) - set(self.state_dict()))
        if missing or unexpected:
            raise ValueError(
                f"checkpoint does not fit this model config: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        self.load_state_dict(state, strict=False)
