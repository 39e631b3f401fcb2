"""Text towers trained from scratch over a caption vocabulary: bag of words, BiLSTM, BiGRU, text-CNN,
small transformer. Each gives `forward(texts) -> (batch, feature_dim)` and, for the re-ranker,
`forward_tokens(texts) -> ((batch, tokens, token_dim), mask (batch, tokens))`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from models.joint.vocab import PAD_ID, Vocab


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, d), (batch, tokens) → (batch, d)."""
    weights = mask.unsqueeze(-1).to(tokens.dtype)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def masked_max(tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, d), (batch, tokens) → (batch, d); padding never wins."""
    return tokens.masked_fill(~mask.unsqueeze(-1), torch.finfo(tokens.dtype).min).max(1).values


class TokenTextTower(nn.Module):
    """Shared part: vocabulary, word vectors, word dropout while training. Subclasses encode tokens."""

    frozen = False
    pooling = "mean"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        vocab = spec.get("vocab")
        if not vocab:
            raise ValueError(
                f"text tower {spec.get('type')!r} needs a vocabulary in its spec ('vocab': [...]); "
                "training builds it from the captions (models.joint.vocab.build_vocab)"
            )
        self.vocab = Vocab(vocab)
        self.max_tokens = int(spec.get("max_tokens", 32))
        self.word_dropout = float(spec.get("word_dropout", 0.0))
        self.word_dim = int(spec.get("word_dim", 300))
        self.embed = nn.Embedding(len(self.vocab), self.word_dim, padding_idx=PAD_ID)

    def _ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        dropout = self.word_dropout if self.training else 0.0
        ids, mask = self.vocab.batch(texts, self.max_tokens, dropout)
        device = self.embed.weight.device
        return ids.to(device), mask.to(device)

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) → (batch, tokens, token_dim)."""
        return self.embed(ids)

    def forward_tokens(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self._ids(texts)
        return self.encode_ids(ids, mask), mask

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        tokens, mask = self.forward_tokens(texts)
        return masked_max(tokens, mask) if self.pooling == "max" else masked_mean(tokens, mask)


class BagOfWordsTower(TokenTextTower):
    """Mean of learned word vectors."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.feature_dim = self.word_dim


class RecurrentTower(TokenTextTower):
    """Bidirectional LSTM or GRU over word vectors, max-pooled over time: feature_dim = 2 * hidden."""

    pooling = "max"

    def __init__(self, spec: dict[str, Any], cell: str) -> None:
        super().__init__(spec)
        hidden, layers = int(spec.get("hidden", 512)), int(spec.get("layers", 1))
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn(self.word_dim, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.feature_dim = 2 * hidden

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(ids), lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.rnn(packed)
        tokens, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return tokens  # (batch, tokens, 2 * hidden)


class TextCNNTower(TokenTextTower):
    """Kim-style text-CNN: convolutions of several widths over word vectors, max-pooled over time."""

    pooling = "max"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        widths = [int(w) for w in spec.get("kernel_widths", [2, 3, 4, 5])]
        channels = int(spec.get("channels", 256))
        self.convs = nn.ModuleList(nn.Conv1d(self.word_dim, channels, w, padding=w // 2) for w in widths)
        self.feature_dim = channels * len(widths)

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words = self.embed(ids).transpose(1, 2)  # (batch, word_dim, tokens)
        length = ids.shape[1]
        maps = [torch.relu(conv(words))[:, :, :length] for conv in self.convs]  # (batch, channels, ≥tokens)
        return torch.cat(maps, dim=1).transpose(1, 2)  # (batch, tokens, channels * widths)


class TransformerTower(TokenTextTower):
    """A small pre-norm transformer encoder from random weights, with learned positions; mean-pooled."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        heads, layers = int(spec.get("heads", 4)), int(spec.get("layers", 2))
        self.position = nn.Parameter(torch.zeros(1, self.max_tokens, self.word_dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            self.word_dim,
            heads,
            dim_feedforward=int(spec.get("ff_dim", 4 * self.word_dim)),
            dropout=float(spec.get("dropout", 0.1)),
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.word_dim)
        self.feature_dim = self.word_dim

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words = self.embed(ids) * math.sqrt(self.word_dim) + self.position[:, : ids.shape[1]]
        return self.norm(self.encoder(words, src_key_padding_mask=~mask))  # (batch, tokens, word_dim)


TEXT_TOWERS = ("bow", "bilstm", "bigru", "textcnn", "transformer")


def build_token_text_tower(spec: dict[str, Any]) -> TokenTextTower:
    kind = spec.get("type")
    if kind == "bow":
        return BagOfWordsTower(spec)
    if kind in ("bilstm", "bigru"):
        return RecurrentTower(spec, "lstm" if kind == "bilstm" else "gru")
    if kind == "textcnn":
        return TextCNNTower(spec)
    if kind == "transformer":
        return TransformerTower(spec)
    raise ValueError(f"unknown text tower {kind!r}; available: {list(TEXT_TOWERS)}")
