"""Text towers trained from scratch over a caption vocabulary: bag of words, BiLSTM, BiGRU, text-CNN,
small transformer. Each gives `forward(texts) -> (batch, feature_dim)` and, for the re-ranker,
`forward_tokens(texts) -> ((batch, tokens, token_dim), mask (batch, tokens))`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from models.joint.config import (
    BagOfWordsSpec,
    RecurrentSpec,
    TextCNNSpec,
    TokenTextSpec,
    TokenTowerSpec,
    TransformerSpec,
)
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

    def __init__(self, spec: TokenTowerSpec) -> None:
        super().__init__()
        if not spec.vocab:
            raise ValueError(
                f"text tower {getattr(spec, 'type', '?')!r} needs a vocabulary in its spec ('vocab': [...]); "
                "training builds it from the captions (models.joint.vocab.build_vocab)"
            )
        self.vocab = Vocab(spec.vocab)
        self.max_tokens = spec.max_tokens
        self.word_dropout = spec.word_dropout
        self.word_dim = spec.word_dim
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

    def __init__(self, spec: BagOfWordsSpec) -> None:
        super().__init__(spec)
        self.feature_dim = self.word_dim


class RecurrentTower(TokenTextTower):
    """Bidirectional LSTM or GRU over word vectors, max-pooled over time: feature_dim = 2 * hidden."""

    pooling = "max"

    def __init__(self, spec: RecurrentSpec) -> None:
        super().__init__(spec)
        rnn = nn.LSTM if spec.type == "bilstm" else nn.GRU
        self.rnn = rnn(
            self.word_dim, spec.hidden, num_layers=spec.layers, batch_first=True, bidirectional=True
        )
        self.feature_dim = 2 * spec.hidden

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

    def __init__(self, spec: TextCNNSpec) -> None:
        super().__init__(spec)
        widths, channels = spec.kernel_widths, spec.channels
        self.convs = nn.ModuleList(nn.Conv1d(self.word_dim, channels, w, padding=w // 2) for w in widths)
        self.feature_dim = channels * len(widths)

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words = self.embed(ids).transpose(1, 2)  # (batch, word_dim, tokens)
        length = ids.shape[1]
        maps = [torch.relu(conv(words))[:, :, :length] for conv in self.convs]  # (batch, channels, ≥tokens)
        return torch.cat(maps, dim=1).transpose(1, 2)  # (batch, tokens, channels * widths)


class TransformerTower(TokenTextTower):
    """A small pre-norm transformer encoder from random weights, with learned positions; mean-pooled."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__(spec)
        self.position = nn.Parameter(torch.zeros(1, self.max_tokens, self.word_dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(
            self.word_dim,
            spec.heads,
            dim_feedforward=spec.ff_dim if spec.ff_dim is not None else 4 * self.word_dim,
            dropout=spec.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, spec.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(self.word_dim)
        self.feature_dim = self.word_dim

    def encode_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        words = self.embed(ids) * math.sqrt(self.word_dim) + self.position[:, : ids.shape[1]]
        return self.norm(self.encoder(words, src_key_padding_mask=~mask))  # (batch, tokens, word_dim)


def build_token_text_tower(spec: TokenTextSpec) -> TokenTextTower:
    if isinstance(spec, BagOfWordsSpec):
        return BagOfWordsTower(spec)
    if isinstance(spec, RecurrentSpec):
        return RecurrentTower(spec)
    if isinstance(spec, TextCNNSpec):
        return TextCNNTower(spec)
    return TransformerTower(spec)
