"""Zero-shot labels for one photo: which of the given label texts fits it best. Knows nothing of HTTP."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.core.config import ApiSettings
from app.services.filters import plain_text
from app.services.query_vectors import ImageQuery, QueryVectors
from models.encoder import Encoder
from models.errors import InvalidInputError
from models.zero_shot import DEFAULT_PROMPT, LabelError, clean_labels, prompts_for, zero_shot

MAX_LABELS = 1000  # labels a command-line label set may hold; the API's limit is api.max_labels


@dataclass(frozen=True)
class LabelScore:
    label: str
    probability: float  # softmax over the given labels, 0..1; they add up to 1
    score: float  # cosine similarity of photo and prompt, -1..1


def checked_labels(
    labels: Sequence[str], prompt: str, max_chars: int, max_labels: int = MAX_LABELS
) -> tuple[list[str], list[str]]:
    """(cleaned labels, their prompts) or InvalidInputError saying what would be right."""
    plain_text(prompt, "the prompt")
    if len(prompt) > max_chars:
        raise InvalidInputError(f"the prompt is {len(prompt):,} characters; the limit is {max_chars:,}")
    for label in labels:
        plain_text(str(label), "a label")
    try:
        cleaned = clean_labels(labels, max_labels=max_labels, max_chars=max_chars)
        return cleaned, prompts_for(cleaned, prompt)
    except LabelError as exc:
        raise InvalidInputError(str(exc)) from exc


def rank_labels(
    encoder: Encoder, image_vector: np.ndarray, labels: Sequence[str], label_vectors: np.ndarray
) -> list[LabelScore]:
    """image_vector (dim,), label_vectors (L, dim) → every label with its probability, best first."""
    probabilities, cosines = zero_shot(image_vector[None, :], label_vectors, encoder.logit_scale)  # (1, L)
    ranked = sorted(zip(labels, probabilities[0], cosines[0], strict=True), key=lambda row: -float(row[1]))
    return [LabelScore(label, float(p), float(c)) for label, p, c in ranked]


class ClassifyService:
    """Label texts are embedded once and kept (LRU), since the same label sets come back."""

    def __init__(self, vectors: QueryVectors, api: ApiSettings, cache_size: int = 4096) -> None:
        self.vectors = vectors
        self.api = api
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def encoder(self) -> Encoder:
        return self.vectors.encoder

    @property
    def model_key(self) -> str:
        return self.encoder.key

    def classify(
        self,
        query: ImageQuery,
        labels: Sequence[str],
        prompt: str = DEFAULT_PROMPT,
        within: frozenset[int] | None = None,
    ) -> list[LabelScore]:
        """within: the collections the request's key sees (None: all); other photos are unknown ids."""
        cleaned, prompts = checked_labels(labels, prompt, self.api.max_prompt_chars, self.api.max_labels)
        image_vector = self.vectors.image_vector(query, within)  # (dim,); 404/413/422 for bad ids or uploads
        return rank_labels(self.encoder, image_vector, cleaned, self.prompt_vectors(prompts))

    def prompt_vectors(self, prompts: list[str]) -> np.ndarray:
        """→ (len(prompts), dim), encoding only prompts not seen lately."""
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        fresh = self.vectors.texts_vectors(missing) if missing else np.zeros((0, self.encoder.dim))
        with self._lock:
            for prompt, vector in zip(missing, fresh, strict=True):
                self._cache[prompt] = vector
            for prompt in prompts:
                self._cache.move_to_end(prompt)
            vectors = np.stack([self._cache[p] for p in prompts])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vectors
