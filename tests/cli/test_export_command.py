"""`photosearch export` and `photosearch index --preset`, as a user runs them."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from cli.main import app
from models.encoder import Encoder
from models.int8_calibration import int8_saturates
from tests.builders import photos

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, encoder: Encoder) -> Iterator[Path]:
    """A data folder and database (SQLite and PostgreSQL) from the environment; the commands get the
    already loaded model on PyTorch, with the preset the command asks for."""
    from app.core.config import get_settings

    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHOTOSEARCH_DATABASE_URL", db_url)
    monkeypatch.setenv("PHOTOSEARCH_DEVICE", "cpu")
    monkeypatch.setenv("PHOTOSEARCH_INDEXER__WORKERS", "0")
    monkeypatch.setenv("PHOTOSEARCH_INFERENCE__RUNTIME", "torch")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("models.inference.create_encoder", lambda *_args: encoder)
    # no caption bank (models/caption_bank.py): its captions would be embedded once per preset's key
    monkeypatch.setattr(encoder, "checkpoint_path", None)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
    encoder.apply_preset("best")  # type: ignore[attr-defined]  # the shipped setting


def embedded_now(output: str) -> int:
    found = re.search(r"embedded now\s*│\s*(\d+)\s*│", output)
    assert found, output
    return int(found.group(1))


def vectors_per_model(db_url: str) -> Counter[str]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT model_key FROM photo_embeddings")).scalars().all()
    engine.dispose()
    return Counter(rows)


def test_switching_presets_never_mixes_vectors_in_one_index(env: Path, db_url: str, encoder: Encoder) -> None:
    folder = env / "photos"
    photos.copy_shared_photos(folder, "val", 5)
    other = runner.invoke(app, ["index", str(folder), "--preset", "fast"])  # not the default
    assert other.exit_code == 0, other.output
    assert embedded_now(other.output) == 5
    # left to its default, the preset follows the store: the library is not embedded again unasked
    plain = runner.invoke(app, ["index", str(folder)])
    assert plain.exit_code == 0 and embedded_now(plain.output) == 0, plain.output
    assert "embedded as" in plain.output and "+fast" in plain.output
    best = runner.invoke(app, ["index", str(folder), "--preset", "best"])  # asked for: embedded anew
    assert best.exit_code == 0, best.output
    assert embedded_now(best.output) == 5
    again = runner.invoke(app, ["index", str(folder), "--preset", "fast"])
    assert again.exit_code == 0 and embedded_now(again.output) == 0  # its own vectors are still there
    key = encoder.apply_preset("best").key  # type: ignore[attr-defined]  # the shipped setting's key
    assert vectors_per_model(db_url) == Counter({key: 5, f"{key}+fast": 5})
    found = runner.invoke(app, ["query", "a dog", "-k", "3"])
    assert found.exit_code == 0, found.output
    assert found.output.count(str(folder)) == 3


def test_an_unknown_preset_is_refused_before_any_photo_is_indexed(env: Path) -> None:
    folder = env / "photos"
    photos.copy_shared_photos(folder, "val", 2)
    result = runner.invoke(app, ["index", str(folder), "--preset", "quick"])
    assert result.exit_code == 2
    assert "unknown preset 'quick': use one of ['fast', 'balanced', 'best']" in result.output
    assert not list(env.glob("data/indexes/**/*.faiss"))


@pytest.mark.slow
def test_export_writes_the_towers_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.config import get_settings

    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    cache = tmp_path / "onnx"
    plain = runner.invoke(app, ["export", "--cache-dir", str(cache), "--quantize", "none"])
    assert plain.exit_code == 0, plain.output  # the fp32 towers alone
    assert sorted(f.name for f in cache.glob("joint-default-*/*.onnx")) == ["image.onnx", "text.onnx"]
    assert "+int8image" not in plain.output
    first = runner.invoke(app, ["export", "--cache-dir", str(cache)])  # quantize auto: int8 on a CPU
    assert first.exit_code == 0, first.output
    files = sorted(cache.glob("joint-default-*/*.onnx"))
    names = [f.name for f in files]
    if int8_saturates():  # no VNNI: the default's 7-bit int8 was measured outside the rule, fp32 it is
        assert names == ["image.onnx", "text.onnx"] and "+balanced" in first.output
        assert "+int8" not in first.output
        return
    # fp32 towers, the image tower in int8 made from them with the shipped calibration, the text tower in
    # int8: the default's own way on a CPU with VNNI, balanced with both towers int8
    assert len(names) == 4 and names[1:] == [
        "image.onnx",
        "text-int8-per-channel-wide-blocks.onnx",
        "text.onnx",
    ]
    assert re.fullmatch(r"image-int8-[0-9a-f]{12}\.onnx", names[0])
    served = [files[0], files[2]]
    assert all(str(f) in first.output for f in served) and "+balanced+int8all" in first.output
    written = {f: f.stat().st_mtime_ns for f in files}
    again = runner.invoke(app, ["export", "--cache-dir", str(cache), "--quantize", "all"])
    assert again.exit_code == 0, again.output
    assert {f: f.stat().st_mtime_ns for f in files} == written  # served from the cache, not exported again
    get_settings.cache_clear()
