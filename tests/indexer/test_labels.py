"""Zero-shot tags at index time keep only labels probable enough, by the same rule as `tag`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.config import Settings
from app.storage.tables import Photo, PhotoEmbedding
from indexer.labels import LabelOptions, read_label_file
from models.encoder import Encoder
from models.errors import InvalidInputError
from models.zero_shot import prompts_for, zero_shot
from tests.builders.indexing import run_index, table, tags_by_path

LABELS = ("dog", "beach", "snow", "bicycle", "child", "water")


def test_a_photo_keeps_only_labels_at_the_threshold_and_may_keep_none(
    sqlite_settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    run_index(sqlite_settings, encoder, photo_folder)
    vectors = {
        e.photo_id: np.frombuffer(e.vector, np.float32) for e in table(sqlite_settings, PhotoEmbedding)
    }
    paths = {p.id: p.path for p in table(sqlite_settings, Photo)}
    ids = sorted(vectors)
    label_vectors = encoder.encode_texts(prompts_for(LABELS))
    probabilities, _ = zero_shot(np.stack([vectors[i] for i in ids]), label_vectors, encoder.logit_scale)
    threshold = float(
        np.median(probabilities.max(axis=1))
    )  # about half the photos have no label that probable

    run_index(
        sqlite_settings,
        encoder,
        photo_folder,
        labels=LabelOptions(LABELS, top_k=3, min_probability=threshold),
    )
    expected = {}
    for pid, row in zip(ids, probabilities, strict=True):
        best_three = np.argsort(-row)[:3]
        expected[paths[pid]] = {LABELS[j] for j in best_three if row[j] >= threshold}
    stored = tags_by_path(sqlite_settings)
    assert stored == expected
    assert any(not tags for tags in stored.values()) and any(tags for tags in stored.values())


def test_label_files_and_rules_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="label file not found"):
        read_label_file(tmp_path / "none.txt")
    (tmp_path / "labels.txt").write_text("# comment only\n")
    with pytest.raises(InvalidInputError, match="has no labels"):
        read_label_file(tmp_path / "labels.txt")
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        LabelOptions(LABELS, top_k=3, min_probability=1.5)
    a, b = (
        LabelOptions(LABELS, top_k=3, min_probability=0.3),
        LabelOptions(LABELS, top_k=3, min_probability=0.4),
    )
    assert a.source("m") != b.source("m")  # a new threshold re-tags
