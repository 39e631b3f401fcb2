"""Cross-attention re-ranker: a caption's tokens attend over an image's patch grid (the image tower's
feature map, average-pooled to `grid` × `grid`, 7×7, when it differs) and give one match logit. It is
applied to a dual encoder's top candidates only (it costs one image-tower pass and a few attention
layers per candidate, where the dual encoder costs one dot product)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.joint.config import RerankerConfig
from models.joint.text_towers import masked_mean


class CrossAttentionReranker(nn.Module):
    def __init__(self, text_dim: int, image_dim: int, spec: RerankerConfig) -> None:
        super().__init__()
        dim, heads = spec.dim, spec.heads
        self.grid = spec.grid
        self.residual = spec.residual
        patches = spec.grid**2
        self.text_in = nn.Linear(text_dim, dim)
        self.image_in = nn.Linear(image_dim, dim)
        self.patch_position = nn.Parameter(torch.zeros(1, patches, dim))
        nn.init.normal_(self.patch_position, std=0.02)
        self.layers = nn.ModuleList(
            nn.TransformerDecoderLayer(
                dim,
                heads,
                2 * dim,
                spec.dropout,
                "gelu",
                batch_first=True,
                norm_first=True,
            )
            for _ in range(spec.layers)
        )
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, 1))
        # a learned scale on the logit, starting at zero: untrained, the re-ranker adds nothing
        self.gate = nn.Parameter(torch.zeros(())) if spec.gate else None

    def project_patches(self, grid: torch.Tensor) -> torch.Tensor:
        """(n, image_dim, h, w) → (n, grid², dim): done once per image, however many captions it meets.
        A map of another size (a larger photo, EfficientNet-Lite1 at 240 px: 8×8) is pooled to grid × grid."""
        if tuple(grid.shape[-2:]) != (self.grid, self.grid):
            grid = F.adaptive_avg_pool2d(grid, self.grid)
        return self.image_in(grid.flatten(2).transpose(1, 2)) + self.patch_position

    def score(self, tokens: torch.Tensor, mask: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """tokens (n, T, text_dim), mask (n, T) True on words, patches (n, grid², dim) → (n,) logits."""
        words = self.text_in(tokens)  # (n, T, dim)
        for layer in self.layers:
            words = layer(words, patches, tgt_key_padding_mask=~mask)
        logits: torch.Tensor = self.head(masked_mean(words, mask)).squeeze(-1)
        return logits if self.gate is None else self.gate * logits

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        """tokens (n, T, text_dim), mask (n, T), grid (n, image_dim, h, w) → (n,) logits."""
        return self.score(tokens, mask, self.project_patches(grid))
