"""A small residual CNN trained from random weights; its last feature map is a 7×7 patch grid at the
configured input size (stride 16: 112 px → 7×7, 224 px → 14×14 pooled adaptively to 7×7)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from models.joint.config import ResNetScratchSpec


class ResidualBlock(nn.Module):
    """Two 3×3 conv–BN layers with a (projected when the shape changes) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNetScratchTower(nn.Module):
    """conv(stride 2)–BN–ReLU stem, max-pool, then one stage per width (the first at stride 1, the
    others at stride 2), `blocks` residual blocks each."""

    frozen = False

    def __init__(self, spec: ResNetScratchSpec) -> None:
        super().__init__()
        widths, blocks = list(spec.widths), spec.blocks
        self.grid = spec.grid
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 5, 2, 2, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        )
        stages: list[nn.Module] = []
        in_ch = widths[0]
        for i, width in enumerate(widths):
            for b in range(blocks):
                stages.append(ResidualBlock(in_ch, width, 2 if (i > 0 and b == 0) else 1))
                in_ch = width
        self.stages = nn.Sequential(*stages)
        self.feature_dim = widths[-1]

    def forward_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, feature_dim, 7, 7)."""
        features = self.stages(self.stem(pixels))
        if features.shape[-1] != self.grid or features.shape[-2] != self.grid:
            features = F.adaptive_avg_pool2d(features, self.grid)
        return features

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, feature_dim)."""
        return self.forward_grid(pixels).mean(dim=(2, 3))
