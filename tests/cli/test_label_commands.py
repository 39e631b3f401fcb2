"""The clip CLI commands (classify, index + tag) with a tiny model in an open_clip local-dir folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from app.core.config import get_settings
from cli.main import app
from models.clip.encoder import random_clip_encoder
from models.clip.export import write_local_dir
from models.clip.tiny import tiny_clip_config

runner = CliRunner()


@pytest.fixture
def local_dir(tmp_path: Path) -> str:
    folder = write_local_dir(random_clip_encoder(tiny_clip_config(), torch.device("cpu")), tmp_path / "tiny")
    return f"local-dir:{folder}"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_dir: str) -> None:
    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHOTOSEARCH_MODEL", local_dir)
    monkeypatch.setenv("PHOTOSEARCH_DEVICE", "cpu")
    monkeypatch.setenv("PHOTOSEARCH_INDEXER__WORKERS", "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_classify_prints_every_label_with_probability(photo_folder: Path, local_dir: str) -> None:
    photo = sorted(photo_folder.glob("*.jpg"))[0]
    result = runner.invoke(
        app,
        [
            "classify",
            str(photo),
            "--model",
            local_dir,
            "-l",
            "dog",
            "-l",
            "snowy mountain",
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "dog" in result.output and "snowy mountain" in result.output
    assert "clip-tiny@" in result.output


def test_classify_refuses_a_prompt_without_a_slot(photo_folder: Path, local_dir: str) -> None:
    photo = sorted(photo_folder.glob("*.jpg"))[0]
    result = runner.invoke(
        app, ["classify", str(photo), "--model", local_dir, "-l", "dog", "--prompt", "a photo"]
    )
    assert result.exit_code == 2
    assert "must contain {}" in result.output


def test_index_then_tag_a_collection(env: None, photo_folder: Path, tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# what our photos show\ndog\nbeach\n\nchildren\n")
    indexed = runner.invoke(app, ["index", str(photo_folder)])
    assert indexed.exit_code == 0, indexed.output
    tagged = runner.invoke(app, ["tag", str(labels), "--top-k", "1"])
    assert tagged.exit_code == 0, tagged.output
    assert "tagged 12 photos" in tagged.output
    unknown = runner.invoke(app, ["tag", str(labels), "--collection", "nope"])
    assert unknown.exit_code == 2 and "no collection 'nope'" in unknown.output


@pytest.mark.slow
def test_a_finetuned_checkpoint_indexes_and_answers(env: None, photo_folder: Path, tmp_path: Path) -> None:
    from models.clip.export import save_clip_checkpoint

    tuned = save_clip_checkpoint(
        random_clip_encoder(tiny_clip_config(), torch.device("cpu"), seed=5), tmp_path / "tuned.safetensors"
    )
    indexed = runner.invoke(app, ["index", str(photo_folder), "--model", str(tuned)])
    assert indexed.exit_code == 0, indexed.output
    assert any("embedded now" in line and "12" in line for line in indexed.output.splitlines())
    answered = runner.invoke(app, ["query", "a dog in the snow", "-k", "3", "--model", str(tuned)])
    assert answered.exit_code == 0, answered.output
    rows = [
        line for line in answered.output.splitlines() if line.strip().startswith(("│ 1 ", "│ 2 ", "│ 3 "))
    ]
    assert len(rows) == 3, answered.output


@pytest.mark.slow
def test_index_labels_and_tag_keep_the_same_tags_by_one_setting(
    env: None, local_dir: str, photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from models.registry import create_encoder
    from models.zero_shot import prompts_for, zero_shot
    from tests.builders.indexing import tags_by_path

    labels = tmp_path / "labels.txt"
    labels.write_text("dog\nbeach\nchildren\n")
    indexed = runner.invoke(app, ["index", str(photo_folder)])
    assert indexed.exit_code == 0, indexed.output
    settings = get_settings()
    encoder = create_encoder(local_dir, device="cpu")
    photo_paths = sorted(str(p) for p in photo_folder.glob("*.jpg"))
    probabilities, _ = zero_shot(
        encoder.encode_images([Image.open(p).convert("RGB") for p in photo_paths]),
        encoder.encode_texts(prompts_for(["dog", "beach", "children"])),
        encoder.logit_scale,
    )
    # the setting both commands read: about half the photos have a label this probable
    threshold = float(np.median(probabilities.max(axis=1)))
    monkeypatch.setenv("PHOTOSEARCH_INDEXER__LABEL_MIN_PROBABILITY", str(threshold))
    get_settings.cache_clear()

    assert runner.invoke(app, ["tag", str(labels)]).exit_code == 0
    by_tag = tags_by_path(settings)
    expected = {
        path: {label for label, p in zip(["dog", "beach", "children"], row, strict=True) if p >= threshold}
        for path, row in zip(photo_paths, probabilities, strict=True)
    }
    assert {path: by_tag[path] for path in photo_paths} == expected
    assert any(expected.values()) and not all(expected.values())

    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "fresh"))
    get_settings.cache_clear()
    again = runner.invoke(app, ["index", str(photo_folder), "--labels", str(labels)])
    assert again.exit_code == 0, again.output
    assert tags_by_path(get_settings()) == by_tag
