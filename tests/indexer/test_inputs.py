"""Every input of `photosearch index` is checked before any photo is read: one line, exit 2, no rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.core.config import get_settings
from app.storage.db import make_engine, migrate, session_factory
from app.storage.tables import Caption, Photo, PhotoEmbedding
from cli.main import app
from tests.builders import photos

runner = CliRunner()


def _row_counts(db_url: str) -> tuple[int, int, int]:
    engine = make_engine(db_url)
    migrate(engine)
    with session_factory(engine)() as session:
        counts = tuple(
            int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Photo, PhotoEmbedding, Caption)
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


def _fails_with(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["index", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if line.strip()][0].startswith("error:")


def test_a_missing_captions_file_stops_before_any_photo_is_embedded(cli_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 3)
    _fails_with([str(folder), "--captions", str(tmp_path / "missing.jsonl")], "captions file not found")
    assert _row_counts(cli_env) == (0, 0, 0)


def test_bad_caption_lines_are_named_and_nothing_is_embedded(cli_env: str, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    captions = photos.copy_shared_photos(folder, "val", 3)
    with open(captions, "a", encoding="utf-8") as handle:
        handle.write("{not json\n")
        handle.write('{"image": "x.jpg", "captions": "one string, not a list"}\n')
        handle.write('{"captions": ["no image"]}\n')
    _fails_with([str(folder), "--captions", str(captions)], "3 line(s) are not")
    result = runner.invoke(app, ["index", str(folder), "--captions", str(captions)])
    assert "line 4, 5, 6" in " ".join(result.output.split())
    assert _row_counts(cli_env) == (0, 0, 0)


def test_folder_and_label_file_are_checked_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 1)
    _fails_with([str(tmp_path / "nowhere")], "folder not found")
    _fails_with([str(folder / "captions.jsonl")], "not a folder")
    _fails_with([str(folder), "--labels", str(tmp_path / "labels.txt")], "label file not found")
    (tmp_path / "labels.txt").write_text("# only a comment\n\n")
    _fails_with([str(folder), "--labels", str(tmp_path / "labels.txt")], "has no labels")
    (tmp_path / "empty.jsonl").write_text("\n")
    _fails_with([str(folder), "--captions", str(tmp_path / "empty.jsonl")], "has no rows")
    assert not (tmp_path / "data" / "photosearch.db").exists()  # the database was not even opened
    get_settings.cache_clear()
