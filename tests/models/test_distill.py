"""Training with teachers: trained models whose in-batch rankings the student learns besides the pairs."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.checkpoint import load_checkpoint
from models.errors import InvalidInputError
from models.registry import load_joint_config
from models.training.data import load_split, training_sets
from models.training.distill import check_teachers, distill_loss, teacher_vectors
from models.training.features import VIEWS
from models.training.options import TrainOptions
from models.training.train import train_joint
from tests.builders.photos import CC3M, captioned_subset

SHIPPED = Path("models/checkpoints/joint-default-v6.safetensors")  # Lite1 + MiniLM
LITE0 = Path("models/checkpoints/joint-default-v5.safetensors")


def _unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    vectors = torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed))
    return vectors / vectors.norm(dim=1, keepdim=True)


def test_the_loss_is_how_far_the_students_rankings_are_from_the_teachers() -> None:
    teacher_image, teacher_text = _unit(16, 32, 1), _unit(16, 32, 2)
    scale = 20.0
    same = distill_loss(
        teacher_image, teacher_text, torch.tensor(math.log(scale)), teacher_image, teacher_text, scale
    )
    assert same.item() == pytest.approx(0.0, abs=1e-5)
    image = teacher_image[torch.randperm(16, generator=torch.Generator().manual_seed(0))].requires_grad_()
    text = teacher_text.clone().requires_grad_()
    held = teacher_image.clone().requires_grad_()
    shuffled = distill_loss(image, text, torch.tensor(math.log(scale)), held, teacher_text, scale)
    assert shuffled.item() > 0.1
    shuffled.backward()
    assert image.grad is not None and image.grad.abs().sum() > 0 and text.grad is not None
    assert held.grad is None  # the teachers only set the target
    # the same order at another temperature is still off: the student learns how sure the teachers are
    softer = distill_loss(
        teacher_image, teacher_text, torch.tensor(math.log(5.0)), teacher_image, teacher_text, scale
    )
    assert softer.item() > 0.01


def test_bad_teachers_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such checkpoint file"):
        check_teachers([tmp_path / "missing.safetensors"], 0.5)
    with pytest.raises(InvalidInputError, match="--distill must be at least 0 and under 1; got 1.0"):
        check_teachers([SHIPPED], 1.0)
    with pytest.raises(InvalidInputError, match="--distill must be at least 0 and under 1; got -0.1"):
        check_teachers([], -0.1)
    with pytest.raises(InvalidInputError, match="needs --distill above 0"):
        check_teachers([SHIPPED], 0.0)
    assert check_teachers([], 0.0) == []
    assert [c.image_tower.type for c in check_teachers([SHIPPED, LITE0], 0.5)] == [
        "efficientnet_lite1",
        "efficientnet_lite0",
    ]


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("taught")
    return (
        captioned_subset(root / "flickr8k", train=40, val=24),
        captioned_subset(root / "cc3m", train=32, val=20, source=CC3M),
    )


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_train_command_refuses_bad_teachers_before_any_work(
    two_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    args = ["train", "--data", str(two_sets[0]), "--out", str(tmp_path / "m.safetensors"), "--device", "cpu"]
    runner = CliRunner()
    missing = runner.invoke(app, [*args, "--teacher", str(tmp_path / "gone.safetensors"), "--distill", "0.5"])
    assert missing.exit_code == 2 and "no such checkpoint file" in missing.output
    unweighted = runner.invoke(app, [*args, "--teacher", str(LITE0)])
    assert unweighted.exit_code == 2 and "needs --distill above 0" in unweighted.output
    assert not (tmp_path / "m.safetensors").exists()


def test_teachers_need_cached_tower_outputs(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    config = load_joint_config("joint-bow-captions")  # its towers train end to end: no cached views
    opts = TrainOptions.from_config(config, device="cpu", cache_dir=tmp_path, teachers=(LITE0,), distill=0.5)
    with pytest.raises(InvalidInputError, match="trains its towers end to end"):
        train_joint(config, training_sets([two_sets[0]]), tmp_path / "m.safetensors", opts)
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.slow
def test_teacher_vectors_are_what_each_teacher_serves_of_the_same_crops(
    two_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    """Both teachers' vectors side by side (equal shares) for every training view of both sets' photos
    and every caption: each the teacher's own embedding (as its encoder embeds that picture), and a crop
    view the same crop for every teacher, whatever its resolution."""
    from cli.evaluation_commands import open_model

    sets = [load_split(path, "train") for path in two_sets]
    seed = 5
    taught = teacher_vectors(
        [SHIPPED, LITE0],
        sets,
        ("original", "crop1"),
        cache_dir=tmp_path / "cache",
        device=torch.device("cpu"),
        crop_seed=seed,
    )
    photos = [p for photos in sets for p in photos]
    captions = [c for p in photos for c in p.captions]
    assert taught.images.shape == (2, len(photos), 1024) and taught.texts.shape == (len(captions), 1024)
    assert 1.0 < taught.scale <= 100.0
    pictures = [Image.open(p.path).convert("RGB") for p in photos]
    random.seed(seed)  # the crops the cache made: one draw after another, photo by photo, set by set
    crops = [VIEWS["crop1"](picture) for picture in pictures[: len(sets[0])]]
    random.seed(seed)
    crops += [VIEWS["crop1"](picture) for picture in pictures[len(sets[0]) :]]
    for k, path in enumerate([SHIPPED, LITE0]):
        columns = slice(512 * k, 512 * (k + 1))
        encoder = open_model(str(path), "cpu", "fast", "none")  # one pass at the training resolution
        share = math.sqrt(2)  # each teacher's unit vector scaled by the square root of its half share
        original = taught.images[0, :, columns].numpy() * share
        crop = taught.images[1, :, columns].numpy() * share
        assert _cosines(original, encoder.encode_images(pictures)).min() > 0.995
        assert _cosines(crop, encoder.encode_images(crops)).min() > 0.995
        assert _cosines(crop, original).mean() < 0.97  # a crop is another view of the photo
        texts = taught.texts[:, columns].numpy() * share
        assert _cosines(texts, encoder.encode_texts(captions)).min() > 0.995


@pytest.mark.slow
def test_a_student_taught_by_a_teacher_ranks_more_as_it_does(
    two_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    """The shipped Lite1 model trained on with the Lite0 model as its teacher (most of the loss) ranks
    batches of its training photos and captions more as the Lite0 model does than the same run without
    a teacher; the checkpoint records its teachers."""
    from cli.evaluation_commands import open_model
    from models.training.evaluate import encode_photo_files

    config = load_joint_config("joint-default-v6")
    config = config.replace(preprocess=config.preprocess.replace(image_size=256))
    data = training_sets(list(two_sets))

    def trained(name: str, **taught: object) -> Path:
        opts = TrainOptions.from_config(
            config, epochs=1, lr=2e-4, batch_size=8, warmup_epochs=0, device="cpu", cache_dir=tmp_path / "c"
        )
        opts.init = SHIPPED
        opts.__dict__.update(taught)
        out = tmp_path / f"{name}.safetensors"
        train_joint(config, data, out, opts)
        return out

    plain = trained("plain")
    student = trained("student", teachers=(LITE0,), distill=0.9)
    assert load_checkpoint(student).info["options"]["teachers"] == str((LITE0,))
    assert load_checkpoint(plain).info["options"]["teachers"] == "()"

    photos = [p for path in two_sets for p in load_split(path, "train")]
    captions = [p.captions[0] for p in photos]

    def vectors(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        encoder = open_model(str(path), "cpu", "fast", "none")
        return (
            torch.from_numpy(encode_photo_files(encoder, [p.path for p in photos])),
            torch.from_numpy(encoder.encode_texts(captions)),
        )

    teacher = vectors(LITE0)
    scale = torch.tensor(math.log(17.0))  # about the Lite0 model's own temperature

    def from_teacher(path: Path) -> float:
        """Mean distillation loss over batches of 8 photos with a caption each, as training draws them."""
        image, text = vectors(path)
        return float(
            np.mean(
                [
                    distill_loss(image[g], text[g], scale, teacher[0][g], teacher[1][g], 17.0).item()
                    for g in (slice(s, s + 8) for s in range(0, len(photos) - 7, 8))
                ]
            )
        )

    far = {"plain": from_teacher(plain), "student": from_teacher(student)}
    # both runs leave the start a little in their first steps; the one with a teacher stays nearer it
    assert far["student"] < far["plain"] - 0.01, far


@pytest.mark.slow
def test_a_resumed_run_goes_on_with_the_teachers_it_started_with(
    two_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    """--resume without --teacher/--distill takes them from the resume file; other ones are refused
    before any work, since the loss would change midway."""
    from dataclasses import replace

    config = load_joint_config("joint-default-v6")
    config = config.replace(
        preprocess=config.preprocess.replace(image_size=128),
        train=config.train.model_copy(update={"views": ("original",)}),
    )
    data = training_sets(list(two_sets))
    opts = TrainOptions.from_config(
        config, epochs=2, lr=2e-4, batch_size=8, warmup_epochs=0, device="cpu", cache_dir=tmp_path / "c"
    )
    opts.init, opts.teachers, opts.distill = SHIPPED, (LITE0,), 0.5
    out = tmp_path / "taught.safetensors"
    train_joint(config, data, out, opts, stop_after=1)

    with pytest.raises(InvalidInputError, match="started with teachers .* at --distill 0.5"):
        train_joint(config, data, out, replace(opts, distill=0.3), resume=out)
    with pytest.raises(InvalidInputError, match="started with teachers"):
        train_joint(config, data, out, replace(opts, teachers=(SHIPPED,)), resume=out)
    train_joint(config, data, out, replace(opts, teachers=(), distill=0.0), resume=out)
    info = load_checkpoint(out).info["options"]
    assert info["teachers"] == str((LITE0,)) and info["distill"] == "0.5"
