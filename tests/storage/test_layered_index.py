"""A base index plus delta segments searches as one index: later segments win, removed ids are never
returned, and an approximate base keeps its recall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.storage.layered_index import Delta, LayeredIndex, read_delta, write_delta
from app.storage.vector_index import (
    IndexFileError,
    build_index,
    plan_index,
    read_index,
    search,
    write_index_atomic,
)
from tests.storage.test_vector_index import unit_rows

DIM = 32


def _layers(kind_limits: tuple[int, int], folder: Path) -> tuple[LayeredIndex, dict[int, np.ndarray]]:
    """A base of 3000 vectors read back as the server reads it, then two deltas that add, change and
    remove; the truth as a dict."""
    vectors = unit_rows(3000, DIM)
    ids = np.arange(3000, dtype=np.int64) * 3 + 1
    truth = dict(zip(ids.tolist(), vectors, strict=True))
    write_index_atomic(build_index(vectors, ids, plan_index(3000, DIM, *kind_limits)), folder / "base.faiss")
    base = read_index(folder / "base.faiss")
    first = Delta(np.array([1, 4, 90_001]), unit_rows(3, DIM, seed=1), np.array([7, 10]))
    second = Delta(np.array([4, 90_002]), unit_rows(2, DIM, seed=2), np.array([90_001, 13]))
    for delta in (first, second):
        for gone in delta.removed.tolist():
            truth.pop(gone, None)
        truth.update(zip(delta.ids.tolist(), delta.vectors, strict=True))
    return LayeredIndex(base, [first, second], DIM), truth


def _exact(truth: dict[int, np.ndarray], queries: np.ndarray, k: int) -> np.ndarray:
    ids = np.array(sorted(truth), dtype=np.int64)
    return search(build_index(np.stack([truth[i] for i in ids]), ids, plan_index(1, DIM)), queries, k)[1]


def test_flat_base_and_deltas_answer_exactly_as_one_index(tmp_path: Path) -> None:
    layered, truth = _layers((10**6, 10**7), tmp_path)
    queries = np.concatenate([unit_rows(30, DIM, seed=9), np.stack([truth[4], truth[90_002], truth[1]])])
    assert layered.search(queries, 10)[1].tolist() == _exact(truth, queries, 10).tolist()
    assert layered.ntotal == len(truth) and sorted(layered.ids().tolist()) == sorted(truth)
    assert np.allclose(layered.reconstruct(4), truth[4])  # the newest delta's vector
    with pytest.raises(KeyError):
        layered.reconstruct(7)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found.tolist(), exact.tolist(), strict=True)])
    )


@pytest.mark.parametrize(
    "limits",
    [pytest.param((10, 10**6), id="hnsw"), pytest.param((10, 100), id="ivfpq", marks=pytest.mark.slow)],
)
def test_approximate_bases_keep_their_recall_and_never_return_removed_ids(
    limits: tuple[int, int], tmp_path: Path
) -> None:
    layered, truth = _layers(limits, tmp_path)
    queries = unit_rows(50, DIM, seed=11)
    found = layered.search(queries, 10)[1]
    vectors = unit_rows(3000, DIM)
    alone = dict(zip((np.arange(3000) * 3 + 1).tolist(), vectors, strict=True))
    base_recall = _recall(search(layered.base, queries, 10)[1], _exact(alone, queries, 10))
    assert _recall(found, _exact(truth, queries, 10)) >= min(0.95, base_recall - 0.02)
    assert not set(found.ravel().tolist()) & {7, 10, 13, 90_001}


def test_segments_round_trip_and_a_broken_one_is_a_clear_error(tmp_path: Path) -> None:
    delta = Delta(np.array([5, 6]), unit_rows(2, DIM), np.array([9]))
    write_delta(delta, tmp_path / "photos-1.delta.npz")
    back = read_delta(tmp_path / "photos-1.delta.npz")
    assert (
        back.ids.tolist() == [5, 6]
        and back.removed.tolist() == [9]
        and np.allclose(back.vectors, delta.vectors)
    )
    (tmp_path / "broken.delta.npz").write_bytes(b"cut short")
    with pytest.raises(IndexFileError, match="unreadable"):
        read_delta(tmp_path / "broken.delta.npz")
    with pytest.raises(IndexFileError, match="photosearch index"):
        read_delta(tmp_path / "gone.delta.npz")
