"""Zero-shot labels: which of some label texts fits a photo best, as probabilities.

probabilities = softmax(logit_scale * cosine(photo, "a photo of {label}.")), the CLIP recipe. Works
with any Encoder (the joint family uses the base class's logit_scale of 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from models.errors import InvalidInputError

DEFAULT_PROMPT = "a photo of {}."


class LabelError(InvalidInputError):
    """Labels or prompt that cannot be used; the message says what would be right."""


def clean_labels(labels: Sequence[str], *, max_labels: int = 1000, max_chars: int = 200) -> list[str]:
    """Trimmed labels, duplicates dropped (first kept), or LabelError."""
    cleaned: list[str] = []
    for raw in labels:
        label = " ".join(str(raw).split())
        if not label:
            raise LabelError("labels must not be empty: give words such as 'dog' or 'beach'")
        if len(label) > max_chars:
            raise LabelError(f"label {label[:40]!r}… is {len(label)} characters; the limit is {max_chars}")
        if label not in cleaned:
            cleaned.append(label)
    if not cleaned:
        raise LabelError("give at least one label (two or more for a meaningful choice)")
    if len(cleaned) > max_labels:
        raise LabelError(f"{len(cleaned)} labels given; the limit is {max_labels}")
    return cleaned


def prompts_for(labels: Sequence[str], prompt: str = DEFAULT_PROMPT) -> list[str]:
    if prompt.count("{}") != 1:
        raise LabelError(
            f"prompt {prompt!r} must contain {{}} exactly once, where the label goes, e.g. {DEFAULT_PROMPT!r}"
        )
    return [prompt.replace("{}", label) for label in labels]


def zero_shot(
    image_vectors: np.ndarray, label_vectors: np.ndarray, logit_scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """image_vectors (n, d), label_vectors (L, d), unit rows → (probabilities (n, L), cosines (n, L))."""
    cosines = image_vectors.astype(np.float32) @ label_vectors.astype(np.float32).T  # (n, L)
    logits = logit_scale * cosines
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True), cosines
