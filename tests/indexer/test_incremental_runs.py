"""A real `photosearch index` run over a folder that gained or lost a few photos adds a delta to the
served index instead of rebuilding it, and the server answers with the new photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.core.config import Settings
from app.storage import repository as repo
from app.storage.tables import IndexBuild
from models.encoder import Encoder
from tests.builders.indexing import photo_ids_by_path, run_index, served_ids, table


def test_three_new_photos_and_one_gone_make_a_delta_not_a_rebuild(
    settings: Settings, encoder: Encoder, photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    later = sorted(photo_folder.glob("*.jpg"))[:3]
    aside = tmp_path / "aside"
    aside.mkdir()
    for photo in later:
        shutil.move(photo, aside / photo.name)
    run_index(settings, encoder, photo_folder)
    (base,) = table(settings, IndexBuild)
    base_mtime = Path(base.path).stat().st_mtime_ns

    for photo in later:
        shutil.move(aside / photo.name, photo)
    gone = sorted(photo_folder.glob("*.jpg"))[-1]
    gone.unlink()

    def read_everything(*args: object, **kwargs: object) -> None:
        raise AssertionError("every vector of the collection was read")

    monkeypatch.setattr(repo, "photo_vectors", read_everything)
    report = run_index(settings, encoder, photo_folder)
    assert (report.embedded, report.reconcile.deleted, report.photo_index) == (3, 1, ("flat", 11))
    latest = max(table(settings, IndexBuild), key=lambda b: b.id)
    assert latest.path == base.path and Path(base.path).stat().st_mtime_ns == base_mtime
    assert [(s.added, s.removed) for s in latest.segments] == [(3, 1)]
    assert served_ids(settings, encoder) == set(photo_ids_by_path(settings).values())
