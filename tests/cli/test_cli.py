"""The `photosearch` command line, as a user runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.builders import photos

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from app.core.config import get_settings

    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHOTOSEARCH_DEVICE", "cpu")
    monkeypatch.setenv("PHOTOSEARCH_INDEXER__WORKERS", "0")
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.slow
def test_index_then_query(env: Path) -> None:
    folder = env / "photos"
    photos.copy_shared_photos(folder, "val", 10)
    (folder / "broken.jpg").write_bytes(b"not a photo")
    result = runner.invoke(app, ["index", str(folder), "--captions", str(folder / "captions.jsonl")])
    assert result.exit_code == 0, result.output
    assert "embedded now" in result.output and "broken.jpg" in result.output
    again = runner.invoke(app, ["index", str(folder)])
    assert again.exit_code == 0 and re.search(r"embedded now\s*│\s*0\s*│", again.output)
    found = runner.invoke(app, ["query", "a dog", "-k", "3"])
    assert found.exit_code == 0, found.output
    assert found.output.count(str(folder)) == 3 and "score" in found.output


def test_query_errors_are_explained(env: Path) -> None:
    empty = runner.invoke(app, ["query", "  "])
    assert empty.exit_code == 2 and "query is empty" in empty.output
    nothing = runner.invoke(app, ["query", "a dog"])
    assert nothing.exit_code == 2 and "photosearch index" in nothing.output


def test_index_a_missing_folder(env: Path) -> None:
    result = runner.invoke(app, ["index", str(env / "nope")])
    assert result.exit_code == 2 and str(env / "nope") in result.output


def test_samples_are_real_photos(env: Path) -> None:
    result = runner.invoke(app, ["samples", str(env / "samples")])
    assert result.exit_code == 0, result.output
    assert (env / "samples" / "chelsea.png").is_file() and len(list((env / "samples").iterdir())) >= 10


@pytest.mark.slow
def test_evaluate_prints_recalls(env: Path) -> None:
    folder = env / "set"
    photos.copy_shared_photos(folder / "images", "val", 20)
    rows = (folder / "images" / "captions.jsonl").read_text().splitlines()
    import json

    with open(folder / "captions.jsonl", "w") as out:
        for line in rows:
            row = json.loads(line)
            out.write(
                json.dumps({"image": f"images/{row['image']}", "captions": row["captions"], "split": "val"})
                + "\n"
            )
    report = env / "report.json"
    result = runner.invoke(
        app, ["evaluate", "--data", str(folder), "--split", "val", "--report", str(report)]
    )
    assert result.exit_code == 0, result.output
    assert "T→I R@1" in result.output and report.is_file() and report.with_suffix(".md").is_file()
    assert json.loads(report.read_text())["images"] == 20


@pytest.mark.slow
def test_index_with_labels_tags_photos_for_search(env: Path) -> None:
    folder = env / "photos"
    photos.copy_shared_photos(folder, "val", 8)
    labels = env / "labels.txt"
    labels.write_text("# what our photos show\ndog\nchild\nbeach\n\nmountain\n")
    missing = runner.invoke(app, ["index", str(folder), "--labels", str(env / "nope.txt")])
    assert missing.exit_code == 2 and "label file not found" in missing.output
    result = runner.invoke(app, ["index", str(folder), "--labels", str(labels), "--label-top-k", "1"])
    assert result.exit_code == 0, result.output
    from app.core.config import get_settings
    from app.services.filters import SearchFilters
    from cli.context import open_service

    service = open_service(get_settings())
    hits = service.search_text("a photo", k=8)
    tags = [[t.tag for t in h.photo.tags] for h in hits]
    assert len(hits) == 8 and all(len(t) == 1 and t[0] in {"dog", "child", "beach", "mountain"} for t in tags)
    chosen = tags[0][0]
    only = service.search_text("a photo", k=8, filters=SearchFilters.of(tags=[chosen]))
    assert {h.photo.id for h in only} == {
        h.photo.id for h, t in zip(hits, tags, strict=True) if t == [chosen]
    }


def test_logging_set_up_by_a_command_outlives_the_runners_stderr(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command sets up logging while the runner has swapped stderr; a record logged after the
    runner closed that stream reaches the stderr of the moment, not a closed file."""
    import logging

    assert runner.invoke(app, ["samples", str(env / "samples")]).exit_code == 0
    capsys.readouterr()
    logging.getLogger("indexer.scan").warning("logged after the command")
    err = capsys.readouterr().err
    assert "logged after the command" in err and "Logging error" not in err
