"""FAISS index files: the right kind by size, exact ids back, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest

from app.storage.vector_index import (
    IndexFileError,
    build_index,
    plan_index,
    read_index,
    search,
    write_index_atomic,
)


def unit_rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_plan_grows_with_size() -> None:
    assert plan_index(10, 64).kind == "flat"
    assert plan_index(100_000, 64).kind == "hnsw"
    big = plan_index(4_000_000, 512)
    assert big.kind == "ivfpq" and big.factory.endswith(",RFlat")


@pytest.mark.parametrize(
    ("flat_max", "hnsw_max", "kind"),
    [(10**6, 10**7, "flat"), (10, 10**6, "hnsw"), pytest.param(10, 100, "ivfpq", marks=pytest.mark.slow)],
)
def test_each_kind_returns_the_nearest_ids(flat_max: int, hnsw_max: int, kind: str) -> None:
    vectors = unit_rows(3000, 64)
    ids = np.arange(3000, dtype=np.int64) * 7 + 5  # ids are SQL ids, not positions
    plan = plan_index(len(vectors), 64, flat_max, hnsw_max)
    assert plan.kind == kind
    index = build_index(vectors, ids, plan)
    queries = vectors[[0, 10, 2999]]
    scores, found = search(index, queries, 5)
    assert found[:, 0].tolist() == [5, 75, 2999 * 7 + 5]
    assert np.allclose(scores[:, 0], 1.0, atol=1e-3)
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best first


def test_write_is_atomic_and_reads_back(tmp_path) -> None:
    vectors = unit_rows(50, 32)
    index = build_index(vectors, np.arange(50, dtype=np.int64), plan_index(50, 32))
    path = tmp_path / "sub" / "photos.faiss"
    write_index_atomic(index, path)
    assert [p.name for p in path.parent.iterdir()] == ["photos.faiss"]  # no temp file left
    for mmap in (False, True):
        loaded = read_index(path, mmap=mmap)
        assert loaded.ntotal == 50
        assert search(loaded, vectors[7:8], 1)[1][0, 0] == 7


def test_k_larger_than_the_index_returns_what_exists() -> None:
    index = build_index(unit_rows(3, 16), np.array([1, 2, 3]), plan_index(3, 16))
    scores, ids = search(index, unit_rows(1, 16, seed=1), 10)
    assert sorted(ids[0].tolist()) == [1, 2, 3]


def test_missing_or_broken_file_says_what_to_do(tmp_path) -> None:
    with pytest.raises(IndexFileError, match="photosearch index"):
        read_index(tmp_path / "gone.faiss")
    broken = tmp_path / "broken.faiss"
    broken.write_bytes(b"not an index")
    with pytest.raises(IndexFileError, match="unreadable"):
        read_index(broken)


@pytest.mark.slow
def test_ivfpq_finds_the_exact_top_10_for_small_and_wide_searches(tmp_path) -> None:
    """IVF-PQ ranks by compressed codes; its exact re-ranking stage must see enough of them that the top 10
    is the true one (recall@10 against exact search), whether 10 or a wide candidate pool is asked for.
    Served as the server serves it: read back memory-mapped, with its search settings."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((64, 128)).astype(np.float32)
    vectors = centres[rng.integers(0, 64, 30_000)] + 0.9 * rng.standard_normal((30_000, 128)).astype(
        np.float32
    )
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    built = build_index(vectors, np.arange(30_000, dtype=np.int64), plan_index(30_000, 128, 10, 100))
    write_index_atomic(built, tmp_path / "photos.faiss")
    index = read_index(tmp_path / "photos.faiss", mmap=True)
    queries = vectors[:100] + 0.05 * rng.standard_normal((100, 128)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    exact = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    for k in (10, 200):
        found = search(index, queries, k)[1][:, :10]
        recall = np.mean(
            [len(set(f) & set(e)) / 10 for f, e in zip(found.tolist(), exact.tolist(), strict=True)]
        )
        assert recall >= 0.95, (k, recall)
