"""`photosearch finetune` on a tiny random CLIP and 64 real Flickr8k photos, on the CPU."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from models.checkpoint import load_checkpoint
from models.clip.encoder import ClipEncoder, random_clip_encoder
from models.clip.export import save_clip_checkpoint
from models.clip.tiny import tiny_clip_config
from models.registry import create_encoder
from models.training.finetune import finetune
from models.training.finetune_data import FinetuneError
from models.training.finetune_steps import FinetuneOptions, accumulate_gradients, prepare_model

FLICKR = Path(__file__).resolve().parents[3] / "shared" / "data" / "flickr8k"
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not (FLICKR / "captions.jsonl").is_file(), reason="shared flickr8k missing")


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """The tiny model, random weights, as a photosearch checkpoint (what --model can name)."""
    return save_clip_checkpoint(
        random_clip_encoder(tiny_clip_config(), torch.device("cpu")), tmp_path / "base.safetensors"
    )


def small_options(**changes: object) -> FinetuneOptions:
    options = FinetuneOptions(
        epochs=3,
        batch_size=16,
        lr=2e-3,
        weight_decay=0.0,
        warmup_steps=2,
        device="cpu",
        workers=0,
        max_train_photos=64,
        max_val_photos=16,
    )
    for key, value in changes.items():
        setattr(options, key, value)
    return options


@pytest.mark.slow
def test_loss_falls_and_checkpoint_serves(tmp_path: Path, base: Path) -> None:
    out = tmp_path / "tuned.safetensors"
    result = finetune(str(base), FLICKR, out, small_options())

    first, last = np.mean(result.step_losses[:3]), np.mean(result.step_losses[-3:])
    assert len(result.step_losses) == 12  # 3 epochs × 64 photos / 16
    assert last < first - 0.2, result.step_losses
    assert [h.epoch for h in result.history] == [1, 2, 3]
    assert result.report is not None and result.report.images == 16
    assert out.with_suffix(".png").is_file()

    checkpoint = load_checkpoint(out)
    assert checkpoint.config.family == "clip"
    assert checkpoint.info["epoch"] == result.best_epoch
    tuned = create_encoder(str(out), device="cpu")
    original = create_encoder(str(base), device="cpu")
    assert isinstance(tuned, ClipEncoder) and tuned.name == "tuned"
    photo = Image.open(FLICKR / "images" / os.listdir(FLICKR / "images")[0])
    assert not np.allclose(tuned.encode_images([photo]), original.encode_images([photo]), atol=1e-3)


@pytest.mark.slow
def test_accumulated_gradients_equal_one_big_batch() -> None:
    torch.manual_seed(0)
    encoder = random_clip_encoder(tiny_clip_config(), torch.device("cpu"))
    prepare_model(encoder.model, FinetuneOptions())
    twin = copy.deepcopy(encoder.model)
    pixels = torch.randn(8, 3, 32, 32)
    tokens = encoder.tokenizer([f"caption number {i}" for i in range(8)])
    loss_fn, scaler = open_clip.ClipLoss(), torch.amp.GradScaler("cpu", enabled=False)
    cpu = torch.device("cpu")

    split = accumulate_gradients(
        encoder.model, loss_fn, [(pixels[:4], tokens[:4]), (pixels[4:], tokens[4:])], None, scaler, cpu
    )
    whole = accumulate_gradients(twin, loss_fn, [(pixels, tokens)], None, scaler, cpu)

    assert split == pytest.approx(whole, rel=1e-5)
    for (name, a), b in zip(encoder.model.named_parameters(), twin.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-6, rtol=1e-4), name


@pytest.mark.slow
def test_locked_image_tower_does_not_move(tmp_path: Path, base: Path) -> None:
    out = tmp_path / "locked.safetensors"
    finetune(str(base), FLICKR, out, small_options(epochs=1, lock_image=True, accum_steps=2, batch_size=8))
    before, after = load_checkpoint(base).state_dict, load_checkpoint(out).state_dict
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("visual."))
    assert not torch.equal(before["text_projection"], after["text_projection"])


def test_locking_both_towers_is_refused(tmp_path: Path, base: Path) -> None:
    with pytest.raises(FinetuneError, match="nothing to train"):
        finetune(
            str(base), FLICKR, tmp_path / "x.safetensors", small_options(lock_image=True, lock_text=True)
        )


def test_joint_family_is_refused_with_the_right_command(tmp_path: Path) -> None:
    joint = ROOT / "models" / "checkpoints" / "joint-default.safetensors"
    if not joint.is_file():
        pytest.skip("joint-default checkpoint not built yet")
    with pytest.raises(FinetuneError, match="photosearch train"):
        finetune(str(joint), FLICKR, tmp_path / "x.safetensors", small_options())


@pytest.mark.slow
def test_torchrun_two_processes_with_gloo(tmp_path: Path, base: Path) -> None:
    out = tmp_path / "ddp.safetensors"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port=29533",
        "-m",
        "cli.main",
        "finetune",
        "--model",
        str(base),
        "--data",
        str(FLICKR),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--device",
        "cpu",
        "--workers",
        "0",
        "--max-train-photos",
        "32",
        "--max-val-photos",
        "8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    info = load_checkpoint(out).info
    assert info["world_size"] == 2
    assert json.loads(out.with_suffix(".history.json").read_text())[0]["epoch"] == 1
    assert len(info["history"]) == 1  # 32 photos / (8 × 2 processes) = 2 steps, one epoch
