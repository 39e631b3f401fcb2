"""Publishing after a few changes writes a delta, not a new index: only the changed vectors are read
from SQL, the base file is left as it is, and search answers exactly as an index built afresh would.
On SQLite and PostgreSQL, with synthetic vectors written straight into SQL."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from app.core.config import IndexerSettings
from app.storage import repository as repo
from app.storage.vector_index import search
from indexer import publish as publishing
from indexer.publish import IndexWriteError
from tests.builders.vector_collections import VectorCollection, unit_rows


@pytest.fixture
def photos(db_url: str, tmp_path: Path) -> VectorCollection:
    return VectorCollection(db_url, tmp_path / "index")


def assert_same_as_fresh(collection: VectorCollection, kind: str = "photos") -> None:
    """Top 10 of 20 queries: the same ids and scores as an exact index built from SQL now."""
    served, fresh = collection.served(kind), collection.fresh_index(kind)
    queries = unit_rows(20, seed=99)
    scores, ids = served.search(queries, 10)
    want_scores, want_ids = search(fresh, queries, 10)
    assert ids.tolist() == want_ids.tolist()
    assert np.allclose(scores, want_scores, atol=1e-6)
    assert sorted(served.ids().tolist()) == sorted(collection.sql_vectors(kind))  # each once


def test_adding_three_photos_writes_only_a_delta_and_reads_only_their_vectors(
    photos: VectorCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos.add(40)
    assert photos.publish() == ("flat", 40)
    base = Path(photos.builds()[-1].path)
    base_mtime = base.stat().st_mtime_ns

    def read_everything(*args: object, **kwargs: object) -> None:
        raise AssertionError("every vector of the collection was read")

    asked: list[list[int]] = []
    read_some = publishing.served_vectors_for_ids
    monkeypatch.setattr(repo, "photo_vectors", read_everything)
    monkeypatch.setattr(
        publishing,
        "served_vectors_for_ids",
        lambda *a, **kw: asked.append(list(kw["ids"])) or read_some(*a, **kw),
    )
    added = photos.add(3)
    assert photos.publish() == ("flat", 43)

    latest = photos.builds()[-1]
    assert Path(latest.path) == base and base.stat().st_mtime_ns == base_mtime
    assert [(s.added, s.removed) for s in latest.segments] == [(3, 0)]
    assert asked == [added]
    new_vectors = np.stack([photos.sql_vectors()[i] for i in added])
    assert photos.served().search(new_vectors, 1)[1][:, 0].tolist() == added
    assert_same_as_fresh(photos)


def test_removed_photos_vanish_and_changed_ones_serve_their_new_vector(photos: VectorCollection) -> None:
    ids = photos.add(40)
    photos.publish()
    before = photos.sql_vectors()
    removed, changed = ids[:3], ids[10:13]
    photos.remove(removed)
    photos.change(changed)
    assert photos.publish() == ("flat", 37)

    served = photos.served()
    old_vectors = np.stack([before[i] for i in removed + changed])
    found = served.search(old_vectors, 5)[1]
    assert not set(found.ravel().tolist()) & set(removed)
    for photo_id in changed:
        assert np.allclose(served.reconstruct(photo_id), photos.sql_vectors()[photo_id])
    assert photos.builds()[-1].segments[0].removed == 3
    assert_same_as_fresh(photos)


def test_a_sequence_of_runs_answers_as_an_index_built_from_scratch(photos: VectorCollection) -> None:
    rng = np.random.default_rng(5)
    photos.publish()
    alive = photos.add(60)
    for _ in range(6):
        gone = [int(i) for i in rng.choice(alive, 4, replace=False)]
        photos.remove(gone[:2])
        photos.change(gone[2:])
        alive = [i for i in alive if i not in gone[:2]] + photos.add(int(rng.integers(1, 6)))
        photos.publish()
        assert_same_as_fresh(photos)


def test_many_small_runs_merge_into_a_new_base_and_leave_no_stray_files(
    photos: VectorCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publishing, "MAX_SEGMENTS", 3)
    photos.add(30)
    photos.publish()
    first_base = photos.builds()[-1].path
    for _ in range(4):
        photos.add(2)
        photos.publish()
    segments = [len(build.segments) for build in photos.builds()]
    latest = photos.builds()[-1]
    assert segments == [3, 0]  # the two builds kept: three segments, then a merge instead of a fourth
    assert latest.path != first_base and latest.base_vectors == 38
    kept = {Path(b.path) for b in photos.builds()} | {
        Path(s.path) for b in photos.builds() for s in b.segments
    }
    kept |= {Path(b.path).with_suffix(".ids.npy") for b in photos.builds()}
    assert set(photos.folder.iterdir()) == kept
    assert_same_as_fresh(photos)

    orphan = photos.folder / "photos-1.delta.npz"  # a killed run's delta, never recorded
    orphan.write_bytes(b"partial")
    os.utime(orphan, (1, 1))
    photos.add(1)
    photos.publish()
    assert not orphan.exists()


def test_crossing_the_flat_limit_changes_the_index_type_once(db_url: str, tmp_path: Path) -> None:
    photos = VectorCollection(db_url, tmp_path / "index", settings=IndexerSettings(flat_max_vectors=25))
    photos.add(20)
    for n in (0, 3, 5, 2, 1):
        photos.add(n)
        photos.publish()
    builds = photos.builds()
    history = [(b.index_type, b.vectors, len(b.segments)) for b in builds]
    assert history == [("hnsw", 30, 1), ("hnsw", 31, 2)]  # the two kept; 20 and 23 were flat
    assert builds[-1].path == builds[-2].path and builds[-1].base_vectors == 28
    served = photos.served()
    assert sorted(served.ids().tolist()) == sorted(photos.sql_vectors())
    queries = np.stack(list(photos.sql_vectors().values()))
    assert (served.search(queries, 1)[1][:, 0] == np.array(list(photos.sql_vectors()))).mean() >= 0.95


def test_a_full_disk_keeps_the_old_index_served_and_the_next_run_recovers(
    photos: VectorCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    photos.add(20)
    photos.publish()
    served_before = sorted(photos.served().ids().tolist())
    added = photos.add(3)

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        with pytest.raises(IndexWriteError, match="No space left on device.*still served"):
            photos.publish()
    assert sorted(photos.served().ids().tolist()) == served_before
    assert [p.name for p in photos.folder.iterdir() if ".tmp-" in p.name] == []

    assert photos.publish() == ("flat", 23)
    assert set(added) <= set(photos.served().ids().tolist())
    assert_same_as_fresh(photos)


def test_captions_are_published_the_same_way(photos: VectorCollection) -> None:
    owners = photos.add(3)
    captions = photos.add_captions(owners[0], 8) + photos.add_captions(owners[1], 4)
    assert photos.publish("captions") == ("flat", 12)
    base = photos.builds("captions")[-1].path

    photos.add_captions(owners[2], 2)
    photos.remove_captions(captions[:2])
    photos.remove([owners[1]])  # its 4 captions go with it
    assert photos.publish("captions") == ("flat", 8)
    latest = photos.builds("captions")[-1]
    assert latest.path == base and [(s.added, s.removed) for s in latest.segments] == [(2, 6)]
    assert_same_as_fresh(photos, "captions")


def test_the_server_memory_maps_an_ivf_base_and_searches_it_with_its_deltas(
    db_url: str, tmp_path: Path
) -> None:
    settings = IndexerSettings(flat_max_vectors=10, hnsw_max_vectors=100)
    photos = VectorCollection(db_url, tmp_path / "index", settings=settings)
    photos.add(400)
    assert photos.publish() == ("ivfpq", 400)
    added = photos.add(3)
    photos.publish()
    served = photos.served()
    base = photos.builds()[-1].path
    assert base in Path("/proc/self/maps").read_text()  # mapped, not read into the process's memory
    new_vectors = np.stack([photos.sql_vectors()[i] for i in added])
    assert served.search(new_vectors, 1)[1][:, 0].tolist() == added
    assert served.ntotal == 403
