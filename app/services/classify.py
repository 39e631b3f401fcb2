"""Zero-shot labels for one photo: which of the given label texts fits it best. Knows nothing of HTTP."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.services.search import ImageQuery, SearchService
from models.clip.zeroshot import DEFAULT_PROMPT, LabelError, clean_labels, prompts_for, zero_shot
from models.encoder import Encoder
from models.errors import InvalidInputError

MAX_LABELS = 1000


@dataclass(frozen=True)
class LabelScore:
    label: str
    probability: float  # softmax over the given labels, 0..1; they add up to 1
    score: float  # cosine similarity of photo and prompt, -1..1


def checked_labels(labels: Sequence[str], prompt: str, max_chars: int) -> tuple[list[str], list[str]]:
    """(cleaned labels, their prompts) or InvalidInputError saying what would be right."""
    try:
        cleaned = clean_labels(labels, max_labels=MAX_LABELS, max_chars=max_chars)
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

    def __init__(self, search: SearchService, cache_size: int = 4096) -> None:
        self.search = search
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def encoder(self) -> Encoder:
        return self.search.encoder

    def classify(
        self, query: ImageQuery, labels: Sequence[str], prompt: str = DEFAULT_PROMPT
    ) -> list[LabelScore]:
        cleaned, prompts = checked_labels(labels, prompt, self.search.settings.api.max_query_chars)
        image_vector = self.search.image_vector(query)  # (dim,); 404/413/422 for bad ids or uploads
        return rank_labels(self.encoder, image_vector, cleaned, self.prompt_vectors(prompts))

    def prompt_vectors(self, prompts: list[str]) -> np.ndarray:
        """→ (len(prompts), dim), encoding only prompts not seen lately."""
        with self._lock:
            missing = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        fresh = self.encoder.encode_texts(missing) if missing else np.zeros((0, self.encoder.dim))
        with self._lock:
            for prompt, vector in zip(missing, fresh, strict=True):
                self._cache[prompt] = vector
            for prompt in prompts:
                self._cache.move_to_end(prompt)
            vectors = np.stack([self._cache[p] for p in prompts])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return vectors
