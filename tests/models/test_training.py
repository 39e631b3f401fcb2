"""`train` and `evaluate` on a small real subset: the loss falls, the checkpoint serves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.joint.config import JointConfig, QueryBankConfig, ServingConfig
from models.registry import create_encoder, load_joint_config
from models.training.evaluate import retrieval_report
from models.training.losses import LOSSES, contrastive_loss
from models.training.options import TrainOptions
from models.training.train import train_joint
from tests.builders.photos import captioned_subset


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """96 train + 32 val real photos in the captions.jsonl layout."""
    return captioned_subset(tmp_path_factory.mktemp("flickr-small"), train=96, val=32)


def test_retrieval_report_on_known_ranks() -> None:
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[1, 0, 0], [0, 0.1, 0.9], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    report = retrieval_report(images, texts, np.array([0, 1, 1, 2]))
    # text 1 describes image 1 but is closer to image 2: rank 2; the rest rank 1
    assert report.t2i_r1 == 75.0 and report.t2i_r5 == 100.0 and report.t2i_medr == 1.0
    assert report.i2t_r1 == 100.0  # every image has one caption ranked first
    assert "| 75.0 |" in report.markdown("x")


@pytest.mark.parametrize("kind", LOSSES)
def test_each_loss_prefers_matched_pairs(kind: str) -> None:
    import torch

    rng = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(16, 8, generator=rng), dim=-1)
    shuffled = image[torch.randperm(16, generator=rng)]
    scale = torch.tensor(np.log(10.0))
    assert contrastive_loss(kind, image, image, scale) < contrastive_loss(kind, image, shuffled, scale)


@pytest.mark.slow
def test_train_writes_a_checkpoint_that_serves(small_data: Path, tmp_path: Path) -> None:
    config = load_joint_config("joint-frozen")
    opts = TrainOptions.from_config(
        config,
        epochs=6,
        batch_size=32,
        patience=10,
        device="cpu",
        cache_dir=tmp_path / "cache",
        warmup_epochs=1,
    )
    out = tmp_path / "model.safetensors"
    result = train_joint(config, small_data, out, opts)
    losses = [h.loss for h in result.history]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert out.is_file() and out.with_suffix(".png").stat().st_size > 10_000
    assert 1 <= result.best_epoch <= 6 and result.report.images == 32 and result.report.captions == 160
    from models.caption_bank import read_sidecar, sidecar_path, unique_texts
    from models.training.data import load_captioned_photos

    trained_on = [c for photo in load_captioned_photos(small_data, "train") for c in photo.captions]
    assert read_sidecar(sidecar_path(out)).texts == unique_texts(trained_on)  # its caption bank
    encoder = create_encoder(str(out), device="cpu")
    from models.training.evaluate import evaluate_encoder

    again = evaluate_encoder(encoder, small_data, "val")
    assert again.rsum == pytest.approx(result.report.rsum, abs=0.5)  # the file is the trained model
    assert again.t2i_r10 > 100 * 10 / 32  # better than chance


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    from models.training.data import DatasetError, load_captioned_photos

    with pytest.raises(DatasetError, match="no captions file"):
        load_captioned_photos(tmp_path)
    (tmp_path / "captions.jsonl").write_text('{"image": "a.jpg"}\n')
    with pytest.raises(DatasetError, match="captions.jsonl:1"):
        load_captioned_photos(tmp_path)


@pytest.mark.slow
def test_partial_finetuning_trains_only_the_top_layers(small_data: Path, tmp_path: Path) -> None:
    """joint-default-v6 (Lite1 + MiniLM; MPNet's split: tests/models/test_mpnet_tower.py): the top image
    blocks and the text layers train on cached outputs of the rest."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.joint.model import JointModel

    # served as trained (tests/models/test_query_bank.py: test-time settings and the bank)
    data = load_joint_config("joint-default-v6").to_json()
    data["train"]["views"] = ["original", "crop1"]
    del data["test_time"], data["query_bank"]
    config = JointConfig.parse(data, "joint-default-v6, two views")
    opts = TrainOptions.from_config(
        config,
        epochs=3,
        batch_size=32,
        patience=10,
        device="cpu",
        cache_dir=tmp_path / "cache",
        warmup_epochs=1,
    )
    out = tmp_path / "tuned.safetensors"
    result = train_joint(config, small_data, out, opts)
    assert result.history[-1].loss < result.history[0].loss
    state = load_checkpoint(out).state_dict
    first = 7 - config.image_tower.finetune_blocks  # the lowest tuned of EfficientNet's 7 blocks
    assert any(k.startswith(f"image_tower.net.blocks.{first}.") for k in state)
    assert not any(k.startswith(f"image_tower.net.blocks.{first - 1}.") for k in state)
    assert any("encoder.layer.5." in k for k in state) and not any("embeddings" in k for k in state)
    assert not any(k.startswith("image_tower.net.conv_stem") for k in state)
    assert all(v.dtype == torch.float16 for k, v in state.items() if "tower" in k and v.is_floating_point())
    pretrained = JointModel(config).image_tower.net.blocks[6][0].conv_pw.weight
    tuned = create_encoder(str(out), device="cpu")
    assert not torch.allclose(tuned.model.image_tower.net.blocks[6][0].conv_pw.weight, pretrained)
    from models.training.evaluate import evaluate_encoder

    # trained on float16 caches and stored as float16: a couple of near-tied ranks may swap (0.625 each)
    assert evaluate_encoder(tuned, small_data, "val").rsum == pytest.approx(result.report.rsum, abs=2.5)


@pytest.mark.slow
def test_cached_training_resumes_exactly_where_it_stopped(small_data: Path, tmp_path: Path) -> None:
    """A run stopped after epoch 1 and resumed from its .resume.pt ends as a straight run does."""
    import torch
    from safetensors.torch import load_file

    from models.training.resume import resume_path

    config = load_joint_config("joint-frozen")
    opts = TrainOptions.from_config(
        config, epochs=3, batch_size=32, patience=10, device="cpu", cache_dir=tmp_path / "cache"
    )
    straight = train_joint(config, small_data, tmp_path / "straight.safetensors", opts)
    interrupted = tmp_path / "resumed.safetensors"
    train_joint(config, small_data, interrupted, opts, stop_after=1)
    assert torch.load(resume_path(interrupted), weights_only=False)["epoch"] == 1
    resumed = train_joint(config, small_data, interrupted, opts, resume=interrupted)
    assert [h.epoch for h in resumed.history] == [1, 2, 3]
    assert [h.loss for h in resumed.history] == pytest.approx([h.loss for h in straight.history], abs=1e-6)
    a, b = load_file(tmp_path / "straight.safetensors"), load_file(interrupted)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    with pytest.raises(FileNotFoundError, match="no resume file"):
        train_joint(config, small_data, tmp_path / "x.safetensors", opts, resume=tmp_path / "x.safetensors")


@pytest.mark.slow
def test_training_ends_with_the_test_time_settings_and_query_bank_its_config_asks_for(
    small_data: Path, tmp_path: Path
) -> None:
    config = load_joint_config("joint-frozen")
    config = config.replace(
        test_time=ServingConfig(image_size=240, hflip=True),
        query_bank=QueryBankConfig(photos=40, captions=100, k=10, beta=0.5),
    )
    opts = TrainOptions.from_config(config, epochs=2, batch_size=32, device="cpu", cache_dir=tmp_path / "c")
    out = tmp_path / "banked.safetensors"
    train_joint(config, small_data, out, opts)
    encoder = create_encoder(str(out), device="cpu")
    assert encoder.preprocess.image_size == 240 and encoder.hflip  # type: ignore[attr-defined]
    bank = encoder.query_bank
    assert bank is not None and bank.images.shape == (40, 512) and bank.texts.shape == (100, 512)
    from models.training.evaluate import encoder_reports

    reports = encoder_reports(encoder, small_data, "val")
    assert set(reports) == {"cosine", "normalised"} and reports["normalised"].images == 32


@pytest.mark.slow
def test_training_can_start_from_a_trained_checkpoint(small_data: Path, tmp_path: Path) -> None:
    """--init: the run starts where the given checkpoint ended (its first val figures are that model's)."""
    config = load_joint_config("joint-frozen")
    opts = TrainOptions.from_config(
        config, epochs=4, batch_size=32, device="cpu", cache_dir=tmp_path / "c", warmup_epochs=1
    )
    first = train_joint(config, small_data, tmp_path / "first.safetensors", opts)
    again = TrainOptions.from_config(
        config, epochs=1, lr=1e-9, batch_size=32, device="cpu", cache_dir=tmp_path / "c", warmup_epochs=0
    )
    fresh = train_joint(config, small_data, tmp_path / "fresh.safetensors", again)
    again.init = tmp_path / "first.safetensors"
    continued = train_joint(config, small_data, tmp_path / "continued.safetensors", again)
    # lr ~0: the model it started as
    assert continued.report.rsum == pytest.approx(first.report.rsum, abs=2.0)
    assert fresh.report.rsum < first.report.rsum - 20  # a fresh start with lr ~0 knows nothing yet
    with pytest.raises(ValueError, match="does not fit this model config"):
        other = load_joint_config("joint-default-v6")
        train_joint(other, small_data, tmp_path / "x.safetensors", again)


@pytest.mark.slow
def test_another_crop_seed_gives_unseen_crop_views(small_data: Path, tmp_path: Path) -> None:
    """--crop-seed: a further training stage sees new random crops; the uncropped view stays the same,
    and each seed's views are cached apart (seed 0 keeps the cache files of before)."""
    import torch

    from models.joint.model import JointModel
    from models.training.data import load_captioned_photos
    from models.training.features import image_features

    config = load_joint_config("joint-frozen")
    tower = JointModel(config).image_tower
    paths = [p.path for p in load_captioned_photos(small_data, "train")[:6]]
    preprocess = config.preprocess

    def views(seed: int, names: tuple[str, ...] = ("original", "crop1")) -> np.ndarray:
        return np.array(
            image_features(
                tower,
                preprocess,
                paths,
                spec=config.image_tower,
                cache_dir=tmp_path / "cache",
                views=names,
                device=torch.device("cpu"),
                crop_seed=seed,
            )
        )

    first, again, other = views(0), views(0), views(7)
    assert len(list((tmp_path / "cache").glob("image-*.npy"))) == 2
    views(0, ("original",))
    views(7, ("original",))  # no random view: one cache file for any seed
    assert len(list((tmp_path / "cache").glob("image-*.npy"))) == 3
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(first[0], other[0], atol=1e-5)  # the photo itself
    assert np.abs(first[1] - other[1]).mean() > 1e-3  # other crops of it


def test_training_commands_take_their_data_from_the_option_or_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No data set has a default location: without --data and PHOTOSEARCH_TRAIN_DATA a clear error,
    with the setting its folder is the one read."""
    from typer.testing import CliRunner

    from app.core.config import get_settings
    from cli.main import app

    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("PHOTOSEARCH_TRAIN_DATA", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    for command in (["train"], ["evaluate"], ["embedding-map"], ["finetune"]):
        result = runner.invoke(app, [*command, "--device", "cpu"])
        assert result.exit_code == 2, result.output
        assert "give --data FOLDER" in result.output and "PHOTOSEARCH_TRAIN_DATA" in result.output
    monkeypatch.setenv("PHOTOSEARCH_TRAIN_DATA", str(tmp_path / "captioned"))
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["evaluate", "--model", "joint-frozen", "--device", "cpu"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2 and str(tmp_path / "captioned" / "captions.jsonl") in result.output


def _frozen_run(
    name: str, tmp_path: Path, text_layers: int | None = None
) -> tuple[JointConfig, TrainOptions]:
    """A shipped config on one small view, and options for one epoch that changes (almost) nothing: what
    a run started from a trained checkpoint keeps shows in its output."""
    data = load_joint_config(name).to_json()
    data["train"]["views"] = ["original"]
    data["preprocess"]["image_size"] = 128
    if text_layers is not None:
        data["text_tower"]["finetune_layers"] = text_layers
    del data["test_time"], data["query_bank"]
    config = JointConfig.parse(data, f"{name}, one small view")
    opts = TrainOptions.from_config(
        config, epochs=1, lr=1e-9, batch_size=32, device="cpu", cache_dir=tmp_path / "c", warmup_epochs=0
    )
    return config, opts


@pytest.mark.slow
def test_a_larger_image_tower_can_start_from_a_trained_caption_space(
    small_data: Path, tmp_path: Path
) -> None:
    """--init-text: a Lite1 model starts with the shipped model's text side (its captions land where that
    model puts them) and its own pretrained image tower; a text side that does not fit is a clear error."""
    import torch
    from typer.testing import CliRunner

    from cli.main import app
    from models.checkpoint import load_checkpoint
    from models.errors import InvalidInputError
    from models.joint.model import JointModel

    shipped = Path("models/checkpoints/joint-default-v5.safetensors")  # Lite0: another image tower
    config, opts = _frozen_run("joint-lite1", tmp_path)
    opts.init_text = shipped
    out = tmp_path / "lite1.safetensors"
    train_joint(config, small_data, out, opts)

    captions = ["a dog runs through the snow", "a red car parked on a street"]
    before = create_encoder(str(shipped), device="cpu").encode_texts(captions)
    after = create_encoder(str(out), device="cpu").encode_texts(captions)
    fresh = JointModel(config).eval()
    with torch.no_grad():
        untrained = fresh.encode_text(captions).numpy()
    assert (after * before).sum(axis=1).min() > 0.999  # unit vectors; float16 tower weights
    assert (untrained * before).sum(axis=1).max() < 0.5
    # the image side is Lite1's own: its tuned blocks are the pretrained ones, its head is new
    state = load_checkpoint(out).state_dict
    top = fresh.image_tower.net.blocks[6][0].conv_pw.weight
    assert torch.allclose(state["image_tower.net.blocks.6.0.conv_pw.weight"].float(), top, atol=1e-2)

    other = load_joint_config("joint-finetune-top2")  # two text layers tuned, not six
    with pytest.raises(InvalidInputError, match="text_tower"):
        train_joint(other, small_data, tmp_path / "x.safetensors", opts)
    result = CliRunner().invoke(
        app, ["train", "--data", str(small_data), "--init", str(shipped), "--init-text", str(shipped)]
    )
    assert result.exit_code == 2 and "--init excludes --init-text" in result.output


@pytest.mark.slow
def test_another_text_tower_can_start_from_a_trained_photo_space(small_data: Path, tmp_path: Path) -> None:
    """--init-image: a model with the shipped model's image tower and another text tower starts with the
    shipped image side (photos land where that model puts them) and its own pretrained text tower."""
    import torch
    from PIL import Image

    from models.errors import InvalidInputError

    shipped = Path("models/checkpoints/joint-default-v6.safetensors")
    # two text layers tuned, not the shipped six: the text side starts pretrained
    config, opts = _frozen_run("joint-default-v6", tmp_path, text_layers=2)
    opts.init_image = shipped
    out = tmp_path / "other-text.safetensors"
    train_joint(config, small_data, out, opts)

    photos = [Image.open(path).convert("RGB") for path in sorted((small_data / "images").iterdir())[:3]]
    pixels = torch.stack([config.preprocess(photo) for photo in photos])
    before, after = (create_encoder(str(path), device="cpu").model for path in (shipped, out))  # type: ignore[attr-defined]
    with torch.no_grad():
        shipped_vectors = torch.nn.functional.normalize(before.encode_image(pixels), dim=-1)
        got = torch.nn.functional.normalize(after.encode_image(pixels), dim=-1)
        captions = ["a dog runs through the snow", "a red car parked on a street"]
        text_cosines = (before.encode_text(captions) * after.encode_text(captions)).sum(-1)
    assert float((got * shipped_vectors).sum(-1).min()) > 0.999
    assert float(text_cosines.max()) < 0.5  # the text head is new

    opts.init_image = Path("models/checkpoints/joint-default-v5.safetensors")  # Lite0: another image tower
    with pytest.raises(InvalidInputError, match="--init-image .*image_tower"):
        train_joint(config, small_data, tmp_path / "x.safetensors", opts)
