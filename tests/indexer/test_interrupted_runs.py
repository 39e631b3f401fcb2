"""Runs that meet the world: a file rewritten mid-run, leftovers of a killed FAISS write, and a
long run whose photos must become searchable before it ends."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from app.core.config import Settings
from app.storage.tables import IndexBuild, Photo, PhotoEmbedding
from models.encoder import Encoder
from tests.builders.encoders import EncoderWithHook
from tests.builders.indexing import run_index, served_ids, table


def _with_indexer(settings: Settings, **changes: object) -> Settings:
    return settings.model_copy(update={"indexer": settings.indexer.model_copy(update=changes)})


def test_a_file_rewritten_while_indexed_gets_hash_and_vector_from_the_same_bytes(
    settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    names = sorted(photo_folder.glob("*.jpg"))
    target, source = names[0], names[5]

    def rewrite_first(batch: int) -> None:
        if batch == 0:  # decoded already, not stored yet
            time.sleep(0.01)
            shutil.copy(source, target)

    first = run_index(settings, EncoderWithHook(encoder, rewrite_first), photo_folder)
    assert first.embedded == 11
    rows = {Path(p.path).name: p for p in table(settings, Photo)}
    assert rows[target.name].status == "pending"
    assert rows[target.name].id not in {e.photo_id for e in table(settings, PhotoEmbedding)}

    second = run_index(settings, encoder, photo_folder)
    assert (second.reconcile.changed, second.embedded) == (1, 1)
    row = {Path(p.path).name: p for p in table(settings, Photo)}[target.name]
    assert row.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()
    vectors = {e.photo_id: np.frombuffer(e.vector, np.float32) for e in table(settings, PhotoEmbedding)}
    assert np.allclose(vectors[row.id], vectors[rows[source.name].id], atol=1e-5)  # the new bytes' vector


def _dead_pid() -> int:
    """The id of a process that has ended (a writer killed mid-write)."""
    probe = subprocess.Popen(["true"])
    probe.wait()
    return probe.pid


def test_leftovers_of_a_killed_write_are_swept_by_the_next_build(
    sqlite_settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    run_index(sqlite_settings, encoder, photo_folder)
    recorded = {Path(b.path) for b in table(sqlite_settings, IndexBuild)}
    folder = next(iter(recorded)).parent
    temp = folder / f".photos-1.faiss.tmp-{_dead_pid()}-1"
    unrecorded_old = folder / "photos-1.faiss"
    unrecorded_new = folder / "photos-2.faiss"  # a concurrent run may be about to record it
    for leftover in (temp, unrecorded_old, unrecorded_new):
        leftover.write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(unrecorded_old, (old, old))

    (sorted(photo_folder.glob("*.jpg"))[0]).unlink()
    run_index(sqlite_settings, encoder, photo_folder)
    assert not temp.exists() and not unrecorded_old.exists() and unrecorded_new.exists()
    assert {Path(b.path) for b in table(sqlite_settings, IndexBuild)} <= set(folder.iterdir())


def test_a_long_run_publishes_before_it_ends(
    sqlite_settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    settings = _with_indexer(sqlite_settings, publish_every_seconds=0.0)
    served_before_batch: list[int] = []
    hooked = EncoderWithHook(
        encoder, lambda batch: served_before_batch.append(len(served_ids(settings, encoder)))
    )
    report = run_index(settings, hooked, photo_folder)
    assert served_before_batch == [0, 8]  # batches of 8: the first batch was searchable during the run
    assert report.publishes == 2 and len(served_ids(settings, encoder)) == 12
