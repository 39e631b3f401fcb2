"""`photosearch train-reranker`: a re-ranker trained over a shipped model's own top candidates, on two
data sets, with the dual encoder left exactly as it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from models.checkpoint import load_checkpoint
from models.registry import checkpoint_file, create_encoder
from tests.builders.photos import CC3M, captioned_subset


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("rerank-sets")
    return captioned_subset(root / "flickr8k", train=16, val=8), captioned_subset(
        root / "cc3m", train=16, val=8, source=CC3M
    )


@pytest.fixture(scope="module")
def reranked(two_sets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    from cli.main import app

    out = tmp_path_factory.mktemp("reranked") / "default-rerank.safetensors"
    flickr, cc3m = two_sets
    args = ["train-reranker", "joint-frozen", "--out", str(out), "--data", str(flickr), "--data", str(cc3m)]
    args += ["--photos", "24", "--captions", "640", "--epochs", "6", "--top-n", "6", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    return out, result.output


def test_a_token_tower_model_gets_a_reranker_measured_on_each_val_set(reranked: tuple[Path, str]) -> None:
    out, output = reranked
    assert out.is_file(), output
    info = load_checkpoint(out).info["reranker"]
    assert set(info["val_with"]) == set(info["val_without"]) == {"flickr8k", "cc3m"}
    # 24 photos: 22 trained on, 2 (the default 10 %) held out to choose the epoch by
    assert info["train_photos"] == 22 and info["held_out_photos"] == 2
    assert len(info["loss_per_epoch"]) == 6 and np.isfinite(info["loss_per_epoch"]).all()
    assert out.with_suffix(".png").stat().st_size > 10_000  # the curves the command names
    curve = info["held_out_r1"]  # before training, then after each of the 6 epochs
    assert len(curve) == 7 and info["kept_epoch"] == int(np.argmax(curve))
    assert curve[0] == info["held_out_dual_r1"]  # gated: untrained, it re-ranks nothing
    # the kept epoch's weights are the ones written: the untrained state's gate is still zero
    gate = float(load_checkpoint(out).state_dict["reranker.gate"])
    assert (gate == 0.0) == (info["kept_epoch"] == 0)
    if info["kept_epoch"] == 0:  # then re-ranking changes no val figure
        assert info["val_with"] == info["val_without"]
    for name, with_ in info["val_with"].items():  # only text→photo is re-ranked
        assert with_["i2t_r1"] == info["val_without"][name]["i2t_r1"]
    text = " ".join(output.split())
    assert "flickr8k val: text→photo R@1" in text and "cc3m val: text→photo R@1" in text
    assert "held-out train photos (2)" in text and f"kept epoch {info['kept_epoch']}" in text


def test_an_untrained_gated_reranker_leaves_the_dual_ranking_as_it_is() -> None:
    """A gated residual re-ranker starts at the dual encoder's own logits, whatever its random weights."""
    from models.joint.config import RerankerConfig

    model = create_encoder("joint-frozen", device="cpu").model  # type: ignore[attr-defined]
    model.add_reranker(RerankerConfig(residual=True, gate=True))
    pixels = torch.rand(3, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        logits = model.rerank_logits(["a dog on a beach"] * 3, model.image_tower.forward_grid(pixels))
        expected = model.dual_logits(model.encode_text(["a dog on a beach"]), model.encode_image(pixels))
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)
    model.add_reranker(RerankerConfig(residual=True, gate=False))  # ungated: its random logit is added
    with torch.no_grad():
        ungated = model.rerank_logits(["a dog on a beach"] * 3, model.image_tower.forward_grid(pixels))
    assert not torch.allclose(ungated, expected, atol=1e-3)


def test_the_dual_encoder_is_left_exactly_as_it_was(
    reranked: tuple[Path, str], two_sets: tuple[Path, Path]
) -> None:
    out, _ = reranked
    before = create_encoder("joint-frozen", device="cpu")
    after = create_encoder(str(out), device="cpu")
    assert before.reranker is None and after.reranker is not None and after.reranker.top_n == 6
    texts = ["a dog runs on the grass", "a red car in a parking lot"]
    np.testing.assert_allclose(after.encode_texts(texts), before.encode_texts(texts), atol=1e-6)
    from PIL import Image

    photo = Image.open(sorted((two_sets[0] / "images").iterdir())[0]).convert("RGB")
    np.testing.assert_allclose(after.encode_images([photo]), before.encode_images([photo]), atol=1e-5)
    if before.query_bank is not None:  # the query bank travels with it
        assert after.query_bank is not None
        np.testing.assert_allclose(after.query_bank.images, before.query_bank.images)


def test_a_residual_reranker_that_adds_nothing_keeps_the_dual_ranking(reranked: tuple[Path, str]) -> None:
    """With the re-ranker's own output zeroed, its score is the dual encoder's logit of the same photo:
    a residual re-ranker corrects the dual ranking rather than replacing it."""
    out, _ = reranked
    encoder = create_encoder(str(out), device="cpu")
    model = encoder.model  # type: ignore[attr-defined]
    assert model.reranker.residual
    torch.nn.init.zeros_(model.reranker.head[-1].weight)
    torch.nn.init.zeros_(model.reranker.head[-1].bias)
    pixels = torch.rand(3, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        grids = model.image_tower.forward_grid(pixels)
        logits = model.rerank_logits(["a dog on a beach"] * 3, grids)
        expected = model.dual_logits(model.encode_text(["a dog on a beach"]), model.encode_image(pixels))
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_bad_requests_are_refused_before_any_work(tmp_path: Path, two_sets: tuple[Path, Path]) -> None:
    from cli.main import app

    runner = CliRunner()
    same = checkpoint_file("joint-frozen")
    for args, message in (
        (["joint-frozen", "--out", str(same)], "--out must be another file"),
        (  # 2 train photos, 1 held out: too few on either side
            ["joint-frozen", "--out", str(tmp_path / "x.safetensors"), "--photos", "2", "--holdout", "0.5"],
            "it needs at least 2 there and 2 to train on",
        ),
        (["joint-frozen", "--out", str(tmp_path / "x.safetensors"), "--holdout", "1.5"], "--holdout"),
        ([str(tmp_path / "missing.safetensors"), "--out", str(tmp_path / "x.safetensors")], "not found"),
    ):
        result = runner.invoke(app, ["train-reranker", *args, "--data", str(two_sets[0]), "--device", "cpu"])
        assert result.exit_code == 2, result.output
        assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.safetensors").exists()
