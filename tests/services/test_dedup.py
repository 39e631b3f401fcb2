"""Greedy grouping of ranked candidates into duplicates (app/services/dedup.py), on vectors whose
cosines are set exactly; the candidate pool a page of groups is drawn from; and grouping ahead of a
model's re-ranker (a tiny trained model: slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from app.core.config import ApiSettings, Settings
from app.services.dedup import BLOCK, DEDUP_POOL, ROW_BY_ROW_MAX, dedup_pool, group_positions
from app.services.search import SearchService
from app.storage.db import make_engine, session_factory
from models.registry import create_encoder
from tests.builders import photos
from tests.builders.indexing import photo_ids_by_path, run_index

THRESHOLD = 0.9


def unit(*angles_deg: float) -> np.ndarray:
    """(n, 3) unit vectors in a plane at these angles: cos(a − b) is the cosine of any two."""
    radians = np.radians(np.array(angles_deg))
    return np.stack([np.cos(radians), np.sin(radians), np.zeros_like(radians)], axis=1).astype(np.float32)


def angle_for(cosine: float) -> float:
    return float(np.degrees(np.arccos(cosine)))


def test_a_candidate_joins_the_first_earlier_leader_it_matches() -> None:
    close = angle_for(0.95)  # above the threshold
    vectors = unit(0, 3 * close, close, 2 * close, 100)  # 2 matches 0 and 1; 3 matches 1 only
    groups = group_positions(vectors, [None] * 5, THRESHOLD)
    assert groups == [[0, 2], [1, 3], [4]]


def test_members_do_not_chain_a_group_beyond_its_leader() -> None:
    step = angle_for(0.95)
    vectors = unit(0, step, 2 * step)  # 1 is like 0, 2 is like 1 but not like 0 (cos 0.805)
    assert float(vectors[0] @ vectors[2]) < THRESHOLD
    assert group_positions(vectors, [None] * 3, THRESHOLD) == [[0, 1], [2]]


def test_the_threshold_itself_counts_as_a_match() -> None:
    vectors = np.array([[1, 0, 0], [0.5, 0.75**0.5, 0], [1, 0, 0]], dtype=np.float32)  # cos 0.5 exactly
    assert group_positions(vectors, [None] * 3, 0.5) == [[0, 1, 2]]
    assert group_positions(vectors, [None] * 3, 0.5001) == [[0, 2], [1]]


def test_the_same_file_is_a_duplicate_whatever_its_vector() -> None:
    vectors = unit(0, 90, 180, 45)
    vectors[3] = 0.0  # a candidate whose vector is missing matches by hash only
    hashes = ["a", "b", "a", "b"]
    assert group_positions(vectors, hashes, THRESHOLD) == [[0, 2], [1, 3]]
    assert group_positions(vectors, [None] * 4, THRESHOLD) == [[0], [1], [2], [3]]


def test_a_file_copied_onto_a_group_member_joins_that_group() -> None:
    close = angle_for(0.95)
    vectors = unit(0, close, 0)
    vectors[2] = 0.0  # no vector: only its hash, equal to member 1's, ties it to the group
    assert group_positions(vectors, ["x", "y", "y"], THRESHOLD) == [[0, 1, 2]]


@pytest.mark.parametrize("n", [ROW_BY_ROW_MAX, BLOCK + 300])  # one candidate at a time; in blocks
def test_grouping_equals_the_rule_applied_pairwise(n: int) -> None:
    rng = np.random.default_rng(n)
    centres = rng.standard_normal((40, 16))
    vectors = centres[rng.integers(0, 40, n)] + 0.15 * rng.standard_normal((n, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    groups = group_positions(vectors, [None] * len(vectors), THRESHOLD)
    leaders: list[int] = []
    expected: dict[int, list[int]] = {}
    for i, vector in enumerate(vectors):  # the rule, one candidate at a time
        leader = next((j for j in leaders if float(vectors[j] @ vector) >= THRESHOLD), None)
        if leader is None:
            leaders.append(i)
        expected.setdefault(i if leader is None else leader, []).append(i)
    assert groups == list(expected.values())
    assert 30 <= len(groups) < len(vectors) // 2  # the data has real groups to find


@pytest.mark.parametrize("wanted", [1, 20, 50, 51, 120, 1000, 11_000])
def test_the_pool_covers_twice_the_hits_wanted_in_steps_shared_by_nearby_pages(wanted: int) -> None:
    pool = dedup_pool(wanted)
    assert pool >= 2 * wanted and pool >= DEDUP_POOL
    assert pool == DEDUP_POOL or pool // 2 < 2 * wanted  # the smallest step that covers it
    assert dedup_pool(max(1, wanted - 1)) in (pool, pool // 2)


def test_the_threshold_setting_is_a_cosine_in_0_1() -> None:
    assert 0 < ApiSettings().dedup_threshold <= 1
    for bad in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match="dedup_threshold"):
            ApiSettings(dedup_threshold=bad)


@pytest.fixture(scope="module")
def rerank_library(
    tmp_path_factory: pytest.TempPathFactory, rerank_checkpoint: Path
) -> tuple[SearchService, dict[str, int]]:
    """A model with a re-ranker over 6 photos and a byte copy of the first: path name → photo id."""
    base = tmp_path_factory.mktemp("dedup-rerank")
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", 6)
    first = sorted(folder.glob("*.jpg"))[0]
    shutil.copyfile(first, folder / "copy-of-first.jpg")
    settings = Settings(data_dir=base / "data", device="cpu")
    encoder = create_encoder(str(rerank_checkpoint), device="cpu")
    run_index(settings, encoder, folder)
    ids = {Path(path).name: pid for path, pid in photo_ids_by_path(settings).items()}
    ids["first"] = ids[first.name]
    return SearchService(settings, encoder, session_factory(make_engine(settings.db_url))), ids


def test_the_reranker_orders_groups_and_keeps_their_duplicates(
    rerank_library: tuple[SearchService, dict[str, int]],
) -> None:
    service, ids = rerank_library
    copies = {ids["first"], ids["copy-of-first.jpg"]}
    query = photos.shared_rows("val", 1)[0]["captions"][0]
    grouped = service.search_text(query, k=7)
    assert all(hit.rerank_score is not None for hit in grouped)
    assert [h.rerank_score for h in grouped] == sorted((h.rerank_score for h in grouped), reverse=True)
    (first,) = [h for h in grouped if copies & {h.photo.id, *h.duplicate_ids}]
    assert copies <= {first.photo.id, *first.duplicate_ids}
    listed = [pid for h in grouped for pid in (h.photo.id, *h.duplicate_ids)]
    assert sorted(listed) == sorted(set(ids.values()))
    every = service.search_text(query, k=7, dedup=False)
    assert len(every) == 7 and all(h.duplicate_ids == [] for h in every)
