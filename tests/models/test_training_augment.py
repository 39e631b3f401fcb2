"""Hard negatives and caption augmentation in training: near-miss negatives weigh more in the loss,
words are left out of captions, the options reach the run and the checkpoint, bad values are refused."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from models.checkpoint import read_checkpoint_config
from models.joint.config import JointConfig
from models.registry import load_joint_config
from models.training.losses import contrastive_loss, hard_negative_nce, info_nce
from models.training.options import TrainOptions
from models.training.train import drop_tokens, train_joint
from models.training.train_e2e import drop_words
from tests.builders.photos import captioned_subset


def unit(rows: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(rows, dim=-1)


def test_hardness_zero_is_plain_infonce_and_equal_negatives_weigh_the_same() -> None:
    generator = torch.Generator().manual_seed(0)
    image, text = (
        unit(torch.randn(12, 16, generator=generator)),
        unit(torch.randn(12, 16, generator=generator)),
    )
    scale = torch.tensor(2.5)
    assert torch.allclose(hard_negative_nce(image, text, scale, 0.0), info_nce(image, text, scale))
    # orthogonal photos and captions: every negative equally far, so the weights are all 1
    basis = torch.eye(12, 16)
    assert torch.allclose(
        hard_negative_nce(basis, basis, scale, 3.0), info_nce(basis, basis, scale), atol=1e-6
    )


def test_the_near_miss_negative_gets_more_of_the_gradient() -> None:
    """Photo 0 comes close to caption 1 (a near miss) and stays far from the other captions: with
    hardness the loss pushes that pair apart harder, relative to the easy negatives, than InfoNCE."""
    similarity = torch.full((16, 16), 0.1) + 0.9 * torch.eye(16)
    similarity[0, 1] = 0.8

    def push(hardness: float) -> float:
        # photos as the unit basis, so photo i against caption j scores exactly similarity[i, j]
        captions = similarity.T.clone().requires_grad_(True)
        contrastive_loss("infonce", torch.eye(16), captions, torch.tensor(2.0), hardness=hardness).backward()
        assert captions.grad is not None
        pair = captions.grad.T  # pair[i, j]: the gradient on photo i's score against caption j
        return float(pair[0, 1] / pair[0, 2:].mean())

    assert push(4.0) > 1.5 * push(0.0) > 1


def test_dropped_tokens_keep_cls_and_leave_about_the_share_out() -> None:
    mask = torch.ones(400, 20, dtype=torch.bool)
    mask[:, 15:] = False  # padding stays padding
    kept = drop_tokens(mask, 0.25, torch.Generator().manual_seed(0))
    assert kept[:, 0].all() and not kept[:, 15:].any()
    assert 0.70 < kept[:, 1:15].float().mean() < 0.80
    assert mask.all(dim=0)[:15].all()  # the cached mask itself is not changed


def test_dropped_words_never_leave_a_caption_empty() -> None:
    random.seed(0)
    caption = "a red car parked in front of an office building"
    shorter = [drop_words(caption, 0.5) for _ in range(200)]
    assert all(s and set(s.split()) <= set(caption.split()) for s in shorter)
    assert any(s != caption for s in shorter) and drop_words("dog", 0.5) == "dog"


@pytest.mark.slow
def test_training_with_hard_negatives_and_token_dropout(tmp_path: Path) -> None:
    """joint-default-v6's tuned layers (MiniLM) on token states, both settings on: the loss falls, the
    checkpoint records how it was trained."""
    data = captioned_subset(tmp_path / "small", train=64, val=16)
    raw = load_joint_config("joint-default-v6").to_json()
    raw["train"].update(views=["original"], hard_negatives=1.0, token_dropout=0.2)
    del raw["test_time"], raw["query_bank"]
    config = JointConfig.parse(raw, "joint-default-v6, augmented")
    opts = TrainOptions.from_config(
        config, epochs=3, batch_size=32, device="cpu", cache_dir=tmp_path / "cache", warmup_epochs=1
    )
    assert opts.hard_negatives == 1.0 and opts.token_dropout == 0.2
    result = train_joint(config, data, tmp_path / "aug.safetensors", opts)
    assert result.history[-1].loss < result.history[0].loss
    stored = read_checkpoint_config(tmp_path / "aug.safetensors")
    assert isinstance(stored, JointConfig)
    assert stored.train.hard_negatives == 1.0 and stored.train.token_dropout == 0.2


def test_bad_settings_are_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.config import get_settings
    from cli.main import app

    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    data = captioned_subset(tmp_path / "small", train=4, val=2)
    runner = CliRunner()
    try:
        for option, value, message in (
            ("--token-dropout", "0.7", "--token-dropout: Input should be less than or equal to 0.5"),
            ("--hard-negatives", "-1", "--hard-negatives: Input should be greater than or equal to 0"),
            ("--view", "rotate90", "--view must be one of original, hflip, crop1, crop2, crop3; got rotate"),
        ):
            result = runner.invoke(app, ["train", "--data", str(data), "--device", "cpu", option, value])
            assert result.exit_code == 2, result.output
            assert message in " ".join(result.output.split())
        # joint-frozen caches pooled caption vectors: there are no words left to leave out
        frozen = runner.invoke(
            app,
            [
                "train",
                "--model",
                "joint-frozen",
                "--data",
                str(data),
                "--device",
                "cpu",
                "--token-dropout",
                "0.1",
            ],
        )
    finally:
        get_settings.cache_clear()
    assert frozen.exit_code == 2, frozen.output
    assert "token dropout needs the caption's tokens" in " ".join(frozen.output.split())
    assert not (tmp_path / "data" / "cache").exists()  # refused before any feature was computed
