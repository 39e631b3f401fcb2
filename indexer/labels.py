"""Zero-shot labels at index time: each photo's best labels from a label set, stored as tags.

For every embedded photo, probabilities over the label set are softmax(logit_scale × cosine) between
its vector and "a photo of {label}." (models/zero_shot.py); the `top_k` best with at least
`min_probability` become rows of photo_tags (a photo with no label that probable gets no tag), which
the `tags` filter of /v1/search/* reads.
Incremental: a photo is re-tagged only when it is new or its content changed, or when the label
set, prompt or model changed (then its earlier zero-shot tags are replaced).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import IndexerSettings
from app.storage import repository as repo
from app.storage.db import transaction
from app.storage.tables import PhotoTag
from models.encoder import Encoder
from models.zero_shot import DEFAULT_PROMPT, LabelError, clean_labels, prompts_for, zero_shot

log = logging.getLogger(__name__)


def read_label_file(path: Path) -> list[str]:
    """One label a line (blank lines and # comments skipped), or a JSON list of strings; a missing,
    unreadable or empty file is a LabelError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LabelError(f"label file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read label file {path}: {exc}") from exc
    if text.lstrip().startswith("["):
        try:
            labels = [str(x) for x in json.loads(text)]
        except (json.JSONDecodeError, TypeError) as exc:
            raise LabelError(f"label file {path} starts with [ but is not a JSON list: {exc}") from exc
    else:
        labels = [
            line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
        ]
    if not labels:
        raise LabelError(f"label file {path} has no labels: write one label a line, e.g. dog")
    return labels


@dataclass(frozen=True)
class LabelOptions:
    """Which tags a photo gets: of `labels`, at most `top_k`, each at least `min_probability`
    (defaults: IndexerSettings.label_top_k / label_min_probability, through from_settings)."""

    labels: tuple[str, ...]
    top_k: int
    min_probability: float
    prompt: str = DEFAULT_PROMPT

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(label.lower() for label in clean_labels(self.labels)))
        prompts_for(["x"], self.prompt)  # raises LabelError for a prompt without exactly one {}
        if self.top_k < 1:
            raise LabelError(f"top_k must be 1 or more; got {self.top_k}")
        if not 0.0 <= self.min_probability <= 1.0:
            raise LabelError(f"min_probability must be between 0 and 1; got {self.min_probability}")

    @classmethod
    def from_settings(
        cls,
        labels_file: Path,
        settings: IndexerSettings,
        *,
        top_k: int | None = None,
        min_probability: float | None = None,
        prompt: str = DEFAULT_PROMPT,
    ) -> LabelOptions:
        """The label file's labels under the settings' rule, or the given overrides."""
        return cls(
            tuple(read_label_file(labels_file)),
            top_k=settings.label_top_k if top_k is None else top_k,
            min_probability=settings.label_min_probability if min_probability is None else min_probability,
            prompt=prompt,
        )

    def source(self, model_key: str) -> str:
        """Names this label set + prompt + rule + model: tags from another source are stale."""
        key = [self.prompt, self.top_k, self.min_probability, *self.labels]
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]
        return f"{repo.ZERO_SHOT_SOURCE_PREFIX}{digest}@{model_key}"


@dataclass
class LabelStats:
    photos_tagged: int = 0
    tags_written: int = 0
    counts: dict[str, int] = field(default_factory=dict)


def best_labels(
    probabilities: np.ndarray, labels: tuple[str, ...], top_k: int, min_probability: float
) -> list[list[tuple[str, float]]]:
    """probabilities (n, L) → per photo, up to top_k (label, probability), best first."""
    order = np.argsort(-probabilities, axis=1)[:, :top_k]  # (n, k)
    return [
        [(labels[j], float(row[j])) for j in picks if row[j] >= min_probability]
        for row, picks in zip(probabilities, order, strict=True)
    ]


def apply_labels(
    sessions: sessionmaker[Session],
    *,
    collection_id: int,
    encoder: Encoder,
    options: LabelOptions,
    chunk: int = 2048,
) -> LabelStats:
    """Tag the collection's photos that need it; each chunk is committed on its own (resumable)."""
    stats = LabelStats()
    source = options.source(encoder.key)
    with sessions() as session:
        todo = repo.photos_needing_tags(
            session, collection_id=collection_id, model_key=encoder.key, source=source
        )
    if not todo:
        return stats
    label_vectors = encoder.encode_texts(prompts_for(options.labels, options.prompt))  # (L, dim)
    for start in range(0, len(todo), chunk):
        with transaction(sessions) as session:
            ids, shas, vectors = repo.photo_vectors_for_ids(
                session, ids=todo[start : start + chunk], model_key=encoder.key, dim=encoder.dim
            )
            probabilities, _ = zero_shot(vectors, label_vectors, encoder.logit_scale)  # (n, L)
            picked = best_labels(probabilities, options.labels, options.top_k, options.min_probability)
            rows = [
                PhotoTag(photo_id=int(pid), tag=tag, score=score, source=source, photo_sha256=sha)
                for pid, sha, tags in zip(ids, shas, picked, strict=True)
                for tag, score in tags
            ]
            repo.replace_zero_shot_tags(session, photo_ids=[int(i) for i in ids], tags=rows)
        stats.photos_tagged += len(ids)
        stats.tags_written += len(rows)
        for row in rows:
            stats.counts[row.tag] = stats.counts.get(row.tag, 0) + 1
    log.info("tagged %d photos with %d zero-shot tags", stats.photos_tagged, stats.tags_written)
    return stats
