"""The indexer over real photos: incremental, rename-aware, resumable, and never lost on bad input."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from app.core.config import Settings
from app.storage import repository as repo
from app.storage.db import make_engine, session_factory
from app.storage.tables import Photo, PhotoEmbedding
from indexer.inputs import FolderNotFoundError
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.encoders import EncoderWithHook
from tests.builders.indexing import run_index, served_ids, table


def test_index_then_nothing_to_do_then_change_delete_rename(
    settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    first = run_index(settings, encoder, photo_folder)
    assert (first.scanned, first.reconcile.new, first.embedded, first.skipped) == (12, 12, 12, [])
    rows = {Path(p.path).name: p for p in table(settings, Photo)}
    assert len(rows) == 12 and all(p.status == "ok" and p.width == 224 for p in rows.values())
    assert served_ids(settings, encoder) == {p.id for p in rows.values()}

    again = run_index(settings, encoder, photo_folder)
    assert (again.embedded, again.reconcile.unchanged, again.reconcile.new) == (0, 12, 0)

    names = sorted(rows)
    changed, deleted, renamed = names[0], names[1], names[2]
    shutil.copy(photo_folder / names[5], photo_folder / changed)  # new content under an old name
    (photo_folder / deleted).unlink()
    old_vector = {e.photo_id: e.vector for e in table(settings, PhotoEmbedding)}[rows[renamed].id]
    (photo_folder / "moved").mkdir()
    (photo_folder / renamed).rename(photo_folder / "moved" / "renamed.jpg")

    third = run_index(settings, encoder, photo_folder)
    r = third.reconcile
    assert (r.changed, r.deleted, r.renamed, r.new, third.embedded) == (1, 1, 1, 0, 1)
    after = {p.id: p for p in table(settings, Photo)}
    assert rows[deleted].id not in after
    moved = after[rows[renamed].id]  # same row, same id
    assert moved.path.endswith("moved/renamed.jpg") and moved.folder == "moved"
    vectors = {e.photo_id: e.vector for e in table(settings, PhotoEmbedding)}
    assert vectors[moved.id] == old_vector
    same = [np.frombuffer(vectors[rows[n].id], np.float32) for n in (changed, names[5])]
    assert np.allclose(*same, atol=1e-5)  # same pixels, same vector (up to batch arithmetic)
    assert served_ids(settings, encoder) == set(after)
    assert len(vectors) == 11


def test_bad_files_are_skipped_with_reasons_and_good_ones_indexed(
    settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    bad = photos.write_bad_files(photo_folder / "bad")
    odd = photos.write_odd_but_good_files(photo_folder / "odd")
    report = run_index(settings, encoder, photo_folder)
    skipped = {Path(path).name: reason for path, reason in report.skipped}
    assert set(skipped) == set(bad)
    assert "decompression bomb" in skipped["bomb.png"]
    assert "empty file" in skipped["empty.jpg"]
    assert "truncated" in skipped["truncated.jpg"]
    assert "not a recognised image format" in skipped["notes.jpg"]
    by_name = {Path(p.path).name: p for p in table(settings, Photo)}
    assert all(by_name[name].status == "skipped" and by_name[name].error for name in bad)
    good = [p for p in by_name.values() if p.status == "ok"]
    assert len(good) == 12 + len(odd)
    assert (by_name["rotated.jpg"].width, by_name["rotated.jpg"].height) == (60, 120)
    camera = by_name["camera.jpg"]
    assert (camera.camera_make, camera.camera_model) == ("Acme", "Shooter 3000")
    assert camera.taken_at is not None and camera.taken_at.year == 2021
    assert served_ids(settings, encoder) == {p.id for p in good}
    # skipped files are not retried until they change
    assert run_index(settings, encoder, photo_folder).embedded == 0


def test_rotated_photo_is_embedded_upright(settings: Settings, encoder: Encoder, tmp_path: Path) -> None:
    folder = tmp_path / "rot"
    folder.mkdir()
    (folder / "rotated.jpg").write_bytes(photos.exif_rotated_jpeg())
    run_index(settings, encoder, folder)
    from models.images import decode_photo

    stored = table(settings, PhotoEmbedding)[0].vector
    upright = encoder.encode_images([decode_photo(folder / "rotated.jpg").image])[0]
    from PIL import Image

    raw = encoder.encode_images([Image.open(folder / "rotated.jpg").convert("RGB")])[0]
    assert np.allclose(np.frombuffer(stored, np.float32), upright, atol=1e-5)
    assert not np.allclose(upright, raw, atol=1e-3)


class _Killed(Exception):
    pass


def _stop_at(batch: int) -> None:
    if batch == 1:
        raise _Killed  # the second batch never finishes, as in a killed run


def test_killed_run_resumes_without_reembedding_or_duplicates(
    settings: Settings, encoder: Encoder, photo_folder: Path
) -> None:
    with pytest.raises(_Killed):
        run_index(settings, EncoderWithHook(encoder, _stop_at), photo_folder)
    assert len(table(settings, PhotoEmbedding)) == 8  # the first batch was committed
    resumed = EncoderWithHook(encoder, lambda batch: None)
    report = run_index(settings, resumed, photo_folder)
    assert resumed.batches == 1 and report.embedded == 4  # only the 4 photos not committed
    assert len(table(settings, PhotoEmbedding)) == 12 and len(table(settings, Photo)) == 12
    assert len(served_ids(settings, encoder)) == 12


def test_missing_folder_is_a_clear_error(settings: Settings, encoder: Encoder, tmp_path: Path) -> None:
    with pytest.raises(FolderNotFoundError, match="folder not found"):
        run_index(settings, encoder, tmp_path / "no-such-folder")


def test_two_collections_are_separate(sqlite_settings: Settings, encoder: Encoder, tmp_path: Path) -> None:
    photos.copy_shared_photos(tmp_path / "a", "val", 3)
    photos.copy_shared_photos(tmp_path / "b", "val", 2, skip=3)
    run_index(sqlite_settings, encoder, tmp_path / "a", collection="a")
    run_index(sqlite_settings, encoder, tmp_path / "b", collection="b")
    run_index(sqlite_settings, encoder, tmp_path / "a", collection="a")  # b must be untouched
    assert len(table(sqlite_settings, Photo)) == 5
    assert len(served_ids(sqlite_settings, encoder)) == 5


def test_index_files_do_not_pile_up(sqlite_settings: Settings, encoder: Encoder, photo_folder: Path) -> None:
    run_index(sqlite_settings, encoder, photo_folder)
    for name in sorted(os.listdir(photo_folder))[:3]:
        if name.endswith(".jpg"):
            (photo_folder / name).unlink()
            run_index(sqlite_settings, encoder, photo_folder)
    files = list(sqlite_settings.index_dir.rglob("*.faiss"))
    assert 1 <= len(files) <= 2
    engine = make_engine(sqlite_settings.db_url)
    with session_factory(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Photo)) == 9
        assert len(repo.latest_index_builds(session, model_key=encoder.key, kind="photos")) == 1
    engine.dispose()
