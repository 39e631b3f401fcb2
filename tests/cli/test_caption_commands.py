"""`photosearch index` prepares the model's caption bank; `photosearch annotate` and `caption-bank`
(the console commands through typer's runner, a tiny real model given by its checkpoint file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.builders import photos
from tests.builders.caption_banks import BANK_TEXTS, tiny_checkpoint

runner = CliRunner()


def test_index_then_annotate_an_uncaptioned_photo_from_the_terminal(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("PHOTOSEARCH_INFERENCE__ONNX_CACHE_DIR", str(tmp_path / "onnx"))
    monkeypatch.setenv("PHOTOSEARCH_INDEXER__CAPTION_BANK", "true")  # the default setting
    model = str(tiny_checkpoint(tmp_path / "model", minilm=True))  # a text tower ONNX Runtime runs
    photos.copy_shared_photos(tmp_path / "photos", "val", 4)
    left = runner.invoke(app, ["index", str(tmp_path / "photos"), "--model", model, "--no-caption-bank"])
    assert left.exit_code == 0 and "embedded now" in left.output, left.output
    assert not list((tmp_path / "cache").glob("caption-banks/*.npz"))  # left to annotation
    # an index run that embeds no caption never exports or opens the text tower
    exports = {path.name.split("-")[0].split(".")[0] for path in (tmp_path / "onnx").glob("*/*.onnx")}
    assert exports == {"image"}
    indexed = runner.invoke(app, ["index", str(tmp_path / "photos"), "--model", model])
    assert indexed.exit_code == 0, indexed.output
    assert len(list((tmp_path / "cache" / "caption-banks").glob("*.npz"))) == 1  # prepared with the index
    assert list((tmp_path / "onnx").glob("*/text*.onnx"))  # opened for the bank's captions
    table = runner.invoke(app, ["annotate", "1", "-k", "3", "--model", model])
    assert table.exit_code == 0, table.output
    assert "source" in table.output and table.output.count("│ model ") == 3
    answer = runner.invoke(app, ["annotate", "1", "-k", "8", "--json", "--model", model])
    assert answer.exit_code == 0, answer.output
    captions = json.loads(answer.stdout)["captions"]
    assert sorted(c["text"] for c in captions) == sorted(BANK_TEXTS)
    assert {c["source"] for c in captions} == {"model"}
    upload = runner.invoke(
        app,
        ["annotate", "--image", str(next((tmp_path / "photos").glob("*.jpg"))), "--json", "--model", model],
    )
    assert upload.exit_code == 0 and len(json.loads(upload.stdout)["captions"]) == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["annotate", "1", "--source", "nope"], "--source 'nope': use collection or model"),
        (["annotate"], "give either a PHOTO_ID or --image PATH"),
        (["annotate", "1", "--source", "collection"], "no captions are indexed"),
        (["annotate", "999"], "no photo with id 999"),
    ],
)
def test_annotate_mistakes_are_one_error_line(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.setenv("PHOTOSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    model = str(tiny_checkpoint(tmp_path / "model"))
    photos.copy_shared_photos(tmp_path / "photos", "val", 2)
    assert runner.invoke(app, ["index", str(tmp_path / "photos"), "--model", model]).exit_code == 0
    result = runner.invoke(app, [*args, "--model", model])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_caption_bank_command_prepares_the_bank_or_says_there_is_none(
    cli_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHOTOSEARCH_CACHE_DIR", str(tmp_path / "cache"))
    banked = runner.invoke(app, ["caption-bank", "--model", str(tiny_checkpoint(tmp_path / "a"))])
    assert banked.exit_code == 0, banked.output
    assert f"{len(BANK_TEXTS)} captions ready" in banked.output
    bare = runner.invoke(app, ["caption-bank", "--model", str(tiny_checkpoint(tmp_path / "b", texts=[]))])
    assert bare.exit_code == 0 and "has no caption bank" in bare.output
