"""What a scan leaves out is logged and reported with its reason; nothing outside the folder is
followed unless allowed; links cannot loop; a name that is not UTF-8 does not stop the run."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import pytest

from app.core.config import Settings
from app.storage.tables import Photo
from indexer.inputs import IndexerError
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.indexing import run_index, table


def _odd_folder(tmp_path: Path) -> Path:
    """2 photos at the top, 1 in sub/, and every kind of entry a scan must not silently take or drop."""
    root = tmp_path / "photos"
    photos.copy_shared_photos(root, "val", 2)
    photos.copy_shared_photos(root / "sub", "val", 1, skip=2)
    photos.copy_shared_photos(tmp_path / "elsewhere", "val", 1, skip=3)
    outside = next((tmp_path / "elsewhere").glob("*.jpg"))
    (root / "passwd.jpg").symlink_to("/etc/passwd")
    (root / "outside.jpg").symlink_to(outside)
    (root / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (root / "loop.jpg").symlink_to(root / "loop.jpg")
    (root / "to-top").symlink_to(root)  # a folder loop
    (root / "again").symlink_to(root / "sub")  # a symlinked folder inside the root
    os.mkfifo(root / "pipe.jpg")
    shutil.copy(outside, root / ".hidden.jpg")
    return root


def _reasons(report_skipped: list[tuple[str, str]]) -> dict[str, str]:
    return {Path(path).name: reason for path, reason in report_skipped}


def test_scan_leaves_out_links_fifos_and_hidden_files_with_reasons(
    sqlite_settings: Settings, encoder: Encoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _odd_folder(tmp_path)
    with caplog.at_level(logging.INFO):
        report = run_index(sqlite_settings, encoder, root)
    reasons = _reasons(report.skipped)
    assert "outside the scanned folder" in reasons["passwd.jpg"]
    assert "outside the scanned folder" in reasons["outside.jpg"]
    assert "dangling symlink" in reasons["dangling.jpg"]
    assert reasons["loop.jpg"] == "a symlink loop"
    assert "not a regular file" in reasons["pipe.jpg"]
    assert "include_hidden" in reasons[".hidden.jpg"]
    assert "not walked again" in caplog.text  # to-top, and the second way into sub/
    for name in ("passwd.jpg", "outside.jpg", "dangling.jpg", "loop.jpg", "pipe.jpg", ".hidden.jpg"):
        assert name in caplog.text
    rows = table(sqlite_settings, Photo)
    assert len(rows) == 3 and all(row.status == "ok" for row in rows)  # sub/ once, by one path


def test_settings_let_outside_links_and_hidden_files_in(
    sqlite_settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    root = _odd_folder(tmp_path)
    settings = sqlite_settings.model_copy(
        update={
            "indexer": sqlite_settings.indexer.model_copy(
                update={"include_hidden": True, "follow_symlinks_outside": True}
            )
        }
    )
    run_index(settings, encoder, root)
    status = {Path(row.path).name: row.status for row in table(settings, Photo)}
    assert status["outside.jpg"] == "ok" and status[".hidden.jpg"] == "ok"
    assert status["passwd.jpg"] == "skipped"  # followed, and refused as not a photo: never "ok"


def test_a_name_that_is_not_utf8_is_skipped_and_the_run_goes_on(
    settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    root = tmp_path / "photos"
    photos.copy_shared_photos(root, "val", 2)
    good = next(root.glob("*.jpg")).read_bytes()
    with open(os.fsencode(root) + b"/\xff\xfe.jpg", "wb") as handle:
        handle.write(good)
    os.mkdir(os.fsencode(root) + b"/caf\xe9")
    with open(os.fsencode(root) + b"/caf\xe9/inside.jpg", "wb") as handle:
        handle.write(good)

    report = run_index(settings, encoder, root)
    assert report.embedded == 2
    reasons = [reason for _, reason in report.skipped]
    assert len(reasons) == 2 and all("not valid UTF-8" in reason for reason in reasons)
    assert {Path(row.path).suffix for row in table(settings, Photo)} == {".jpg"}
    assert run_index(settings, encoder, root).embedded == 0  # and again, without stopping
    with pytest.raises(IndexerError, match="not valid UTF-8"):
        run_index(settings, encoder, Path(os.fsdecode(os.fsencode(root) + b"/caf\xe9")))
