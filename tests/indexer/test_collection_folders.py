"""A collection holds several folders: indexing one of them never removes the others' photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.core.config import Settings
from app.storage import repository as repo
from app.storage.db import make_engine, session_factory
from indexer.inputs import FolderNotFoundError
from indexer.pipeline import FolderLooksEmptyError
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.indexing import photo_ids_by_path, run_index, served_ids


def _folders(settings: Settings, name: str = "default") -> list[str]:
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session:
        found = repo.get_collection(session, name=name)
        assert found is not None
        folders = repo.collection_folders(session, collection_id=found.id)
    engine.dispose()
    return folders


def test_parent_then_sub_folder_keeps_every_photo(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    root = photos.nested_photo_folders(tmp_path / "p3")
    run_index(settings, encoder, root)
    before = photo_ids_by_path(settings)
    assert len(before) == 5

    again = run_index(settings, encoder, root / "a")
    assert (again.reconcile.deleted, again.reconcile.new, again.embedded) == (0, 0, 0)
    assert photo_ids_by_path(settings) == before
    assert served_ids(settings, encoder) == set(before.values())
    assert _folders(settings) == [str(root)]  # the sub-folder is inside a registered folder

    (root / "a" / sorted(p.name for p in (root / "a").glob("*.jpg"))[0]).unlink()
    gone = run_index(settings, encoder, root / "a")
    assert gone.reconcile.deleted == 1 and len(photo_ids_by_path(settings)) == 4


def test_sub_folder_then_parent_keeps_ids_without_duplicates(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    root = photos.nested_photo_folders(tmp_path / "p3")
    run_index(settings, encoder, root / "a")
    first = photo_ids_by_path(settings)
    assert len(first) == 2

    parent = run_index(settings, encoder, root)
    assert (parent.reconcile.new, parent.reconcile.deleted, parent.embedded) == (3, 0, 3)
    after = photo_ids_by_path(settings)
    assert len(after) == 5 and {path: after[path] for path in first} == first
    assert _folders(settings) == [str(root)]  # the parent replaced its registered sub-folder
    engine = make_engine(settings.db_url)
    with session_factory(engine)() as session:
        rows = repo.get_photos(session, ids=list(first.values()))
        assert {row.folder for row in rows.values()} == {"a"}  # named from the parent now
    engine.dispose()
    assert served_ids(settings, encoder) == set(after.values())


def test_two_sibling_folders_in_one_collection(settings: Settings, encoder: Encoder, tmp_path: Path) -> None:
    photos.copy_shared_photos(tmp_path / "s1", "val", 3)
    photos.copy_shared_photos(tmp_path / "s2", "val", 2, skip=3)
    run_index(settings, encoder, tmp_path / "s1", collection="x")
    run_index(settings, encoder, tmp_path / "s2", collection="x")
    ids = photo_ids_by_path(settings)
    assert len(ids) == 5 and _folders(settings, "x") == [str(tmp_path / "s1"), str(tmp_path / "s2")]

    moved = sorted((tmp_path / "s1").glob("*.jpg"))[0]
    shutil.move(moved, tmp_path / "s2" / "moved.jpg")
    report = run_index(settings, encoder, tmp_path / "s2", collection="x")
    assert (report.reconcile.renamed, report.reconcile.deleted, report.embedded) == (1, 0, 0)
    after = photo_ids_by_path(settings)
    assert after[str(tmp_path / "s2" / "moved.jpg")] == ids[str(moved)]  # same row and vector

    (sorted((tmp_path / "s1").glob("*.jpg"))[0]).unlink()
    untouched = run_index(settings, encoder, tmp_path / "s2", collection="x")
    assert untouched.reconcile.deleted == 0 and len(photo_ids_by_path(settings)) == 5
    assert run_index(settings, encoder, tmp_path / "s1", collection="x").reconcile.deleted == 1
    assert len(served_ids(settings, encoder)) == 4


def test_a_missing_or_emptied_folder_removes_nothing(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    photos.copy_shared_photos(tmp_path / "drive" / "photos", "val", 2)
    root = tmp_path / "drive" / "photos"
    run_index(settings, encoder, root)
    ids = photo_ids_by_path(settings)

    (tmp_path / "drive").rename(tmp_path / "unmounted")
    with pytest.raises(FolderNotFoundError, match="is the drive mounted"):
        run_index(settings, encoder, root)
    assert photo_ids_by_path(settings) == ids

    root.mkdir(parents=True)  # an empty mount point where the drive was
    with pytest.raises(FolderLooksEmptyError, match="2 were indexed from it"):
        run_index(settings, encoder, root)
    assert photo_ids_by_path(settings) == ids and served_ids(settings, encoder) == set(ids.values())

    emptied = run_index(settings, encoder, root, allow_empty=True)
    assert emptied.reconcile.deleted == 2 and photo_ids_by_path(settings) == {}
