"""Joint model zoo (issue 3): every tower trains end to end on a tiny real subset and survives its
checkpoint; vocabularies, resume, the re-ranker and the embedding map do what a user would check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.joint.config import JointConfig
from models.joint.vocab import UNK_ID, Vocab, build_vocab
from models.registry import create_encoder
from models.training.data import load_captioned_photos
from models.training.evaluate import evaluate_encoder
from models.training.resume import resume_path
from models.training.train import train_joint
from models.training.train_e2e import train_e2e
from tests.builders.tiny_models import TEXT_SPECS, tiny_config, tiny_options


@pytest.mark.slow
@pytest.mark.parametrize("text", list(TEXT_SPECS))
def test_each_tower_trains_and_round_trips(text: str, tiny_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model.safetensors"
    result = train_joint(tiny_config(text), tiny_data, out, tiny_options(tmp_path))
    losses = [h.loss for h in result.history]
    assert len(losses) == 3 and losses[-1] < losses[0], losses
    assert out.with_suffix(".png").is_file()
    first, second = create_encoder(str(out), device="cpu"), create_encoder(str(out), device="cpu")
    captions = [c for p in load_captioned_photos(tiny_data, "val")[:4] for c in p.captions]
    assert np.array_equal(first.encode_texts(captions), second.encode_texts(captions))
    # the file holds the trained model: the same validation figures as at its best epoch
    assert evaluate_encoder(first, tiny_data, "val").rsum == pytest.approx(result.report.rsum, abs=0.5)


def test_vocabulary_edge_cases() -> None:
    tokens = build_vocab(["A dog runs.", "a DOG sleeps", "a cat"], min_count=2)
    assert tokens[:2] == ["<pad>", "<unk>"] and set(tokens[2:]) == {"a", "dog"}
    vocab = Vocab(tokens)
    assert vocab.ids("a zebra dog", 10) == [vocab.index["a"], UNK_ID, vocab.index["dog"]]
    assert vocab.ids("!!! ...", 10) == [UNK_ID]  # nothing left after cleaning: one <unk>, not an empty row
    ids, mask = vocab.batch(["a dog", "?!"], max_tokens=8)
    assert ids.shape == (2, 2) and mask.tolist() == [[True, True], [True, False]]
    with pytest.raises(ValueError, match="starts with"):
        Vocab(["dog", "cat"])


def test_text_tower_without_vocabulary_says_how_to_get_one() -> None:
    from models.joint.config import RecurrentSpec
    from models.joint.towers import build_text_tower
    from models.schema import ModelConfigError

    with pytest.raises(ValueError, match="needs a vocabulary"):
        build_text_tower(RecurrentSpec(type="bilstm"))
    unknown = tiny_config("bow").to_json() | {"text_tower": {"type": "elmo"}}
    with pytest.raises(ModelConfigError, match="expected tags: .*'transformer'"):
        JointConfig.parse(unknown, "elmo.json")


@pytest.mark.parametrize("text", ["bow", "bigru", "transformer"])
def test_odd_queries_give_finite_unit_vectors(text: str) -> None:
    from models.joint.model import JointModel

    tiny = tiny_config(text)
    config = tiny.replace(text_tower=tiny.text_tower.model_copy(update={"vocab": build_vocab(["a dog"] * 2)}))
    model = JointModel(config).eval()
    vectors = model.encode_text(["!!!", "zebra quokka", "a dog " * 100])
    assert torch.isfinite(vectors).all() and torch.allclose(vectors.norm(dim=-1), torch.ones(3), atol=1e-5)


@pytest.mark.slow
def test_resume_continues_with_identical_state(tiny_data: Path, tmp_path: Path) -> None:
    config = tiny_config("bigru")
    straight = train_e2e(config, tiny_data, tmp_path / "straight.safetensors", tiny_options(tmp_path))
    interrupted = tmp_path / "resumed.safetensors"
    train_e2e(config, tiny_data, interrupted, tiny_options(tmp_path), stop_after=1)
    saved = torch.load(resume_path(interrupted), weights_only=False)
    assert saved["epoch"] == 1 and len(saved["history"]) == 1
    resumed = train_e2e(
        config, tiny_data, interrupted, tiny_options(tmp_path), resume=resume_path(interrupted)
    )
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in straight.history], abs=1e-6)
    a, b = load_file(tmp_path / "straight.safetensors"), load_file(interrupted)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resume_from_a_missing_file_is_a_clear_error(tiny_data: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no resume file"):
        train_e2e(
            tiny_config("bow"),
            tiny_data,
            tmp_path / "x.safetensors",
            tiny_options(tmp_path),
            resume=tmp_path / "x.safetensors",
        )


@pytest.mark.slow
def test_reranker_is_saved_and_reorders_candidates(rerank_checkpoint: Path, tiny_data: Path) -> None:
    from models.checkpoint import load_checkpoint
    from models.images import decode_photo

    info = load_checkpoint(rerank_checkpoint).info["reranker"]
    assert info["loss_last"] < info["loss_first"]  # it learned something on its hard negatives
    for name, reranked in info["val_with"].items():  # only text→image is re-ranked
        assert reranked["i2t_r1"] == info["val_without"][name]["i2t_r1"]
    encoder = create_encoder(str(rerank_checkpoint), device="cpu")
    assert encoder.reranker is not None and encoder.reranker.top_n == 6
    photos = load_captioned_photos(tiny_data, "val")
    images = [decode_photo(p.path).image for p in photos]
    image_vectors = encoder.encode_images(images)
    changed = 0
    for photo in photos[:8]:
        cosines = image_vectors @ encoder.encode_texts([photo.captions[0]])[0]
        dual = np.argsort(-cosines)[:6]
        logits = encoder.reranker.rerank(photo.captions[0], [images[i] for i in dual], cosines[dual].tolist())
        changed += list(np.argsort(-logits, kind="stable")) != list(range(6))
    assert changed >= 1


@pytest.mark.slow
def test_embedding_map_writes_a_png(rerank_checkpoint: Path, tiny_data: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    out = tmp_path / "map.png"
    args = ["embedding-map", "--model", str(rerank_checkpoint), "--data", str(tiny_data), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--count", "16", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    bad = CliRunner().invoke(app, [*args, "--count", "2", "--device", "cpu"])
    assert bad.exit_code == 2 and "at least 4 photos" in bad.output
