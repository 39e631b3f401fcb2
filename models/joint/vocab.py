"""A word vocabulary built from training captions; it travels inside the model config (JSON), so a
checkpoint still rebuilds its text tower alone."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-cased words and numbers; punctuation is dropped ("A dog's ball!" → ["a", "dog's", "ball"])."""
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str], min_count: int = 2, max_size: int = 20_000) -> list[str]:
    """[<pad>, <unk>, words seen at least min_count times, most frequent first (ties alphabetical)]."""
    counts = Counter(w for text in texts for w in words(text))
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return [PAD, UNK, *kept[: max_size - 2]]


class Vocab:
    def __init__(self, tokens: Sequence[str]) -> None:
        if len(tokens) < 2 or tokens[PAD_ID] != PAD or tokens[UNK_ID] != UNK:
            raise ValueError(
                f"a vocabulary starts with {[PAD, UNK]} followed by words; got {list(tokens[:3])}... "
                "(build one with models.joint.vocab.build_vocab)"
            )
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str, max_tokens: int) -> list[int]:
        """Word ids, unknown words → <unk>; a text with no words at all becomes [<unk>] so it still
        has one position to pool over (never an all-padding row, which would pool to NaN)."""
        found = [self.index.get(w, UNK_ID) for w in words(text)][:max_tokens]
        return found or [UNK_ID]

    def batch(
        self, texts: Sequence[str], max_tokens: int, word_dropout: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """→ ids (batch, tokens) long, padded with 0; mask (batch, tokens) bool, True on real words.

        word_dropout replaces that share of real words with <unk> (a training-time augmentation)."""
        rows = [self.ids(t, max_tokens) for t in texts]
        length = max((len(r) for r in rows), default=1)
        ids = torch.zeros(len(rows), length, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
        mask = ids != PAD_ID
        if word_dropout > 0:
            drop = (torch.rand(ids.shape) < word_dropout) & mask
            ids = ids.masked_fill(drop, UNK_ID)
        return ids, mask
