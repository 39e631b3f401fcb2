"""Training on several captioned data sets at once: each drawn by its sampling weight, each val set
measured on its own, and `evaluate` reporting every set apart."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from models.caption_bank import read_sidecar, sidecar_path, unique_texts
from models.checkpoint import load_checkpoint
from models.joint.model import JointModel
from models.registry import load_joint_config
from models.training.data import (
    DatasetError,
    epoch_order,
    load_captioned_photos,
    training_sets,
)
from models.training.evaluate import SetReports, report_from_dict
from models.training.features import image_features
from models.training.options import TrainOptions
from models.training.train import _Features, _join, _pad_tokens, train_joint
from tests.builders.photos import CC3M, captioned_subset


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Real photos of both shared data sets: Flickr8k (5 captions each) and CC3M (one each)."""
    root = tmp_path_factory.mktemp("two-sets")
    flickr = captioned_subset(root / "flickr8k", train=64, val=24)
    cc3m = captioned_subset(root / "cc3m", train=48, val=20, source=CC3M)
    return flickr, cc3m


def test_each_set_is_drawn_by_its_weight() -> None:
    generator = torch.Generator().manual_seed(3)
    order = epoch_order([10, 4, 6], [1.0, 0.5, 2.5], generator)
    counts = Counter(order.tolist())
    assert len(order) == 10 + 2 + 15
    assert all(counts[i] == 1 for i in range(10))  # weight 1: every photo once
    assert sorted(counts[i] for i in range(10, 14)) == [0, 0, 1, 1]  # weight 0.5: a random half
    assert all(counts[i] in (2, 3) for i in range(14, 20)) and sum(counts[i] for i in range(14, 20)) == 15
    assert order[:10].tolist() != sorted(order[:10].tolist())  # the sets are shuffled together
    again = epoch_order([10, 4, 6], [1.0, 0.5, 2.5], torch.Generator().manual_seed(3))
    assert torch.equal(order, again)  # the run's generator alone decides: a resumed run repeats it


@pytest.mark.parametrize(
    ("paths", "weights", "message"),
    [
        (["a/flickr8k", "b/cc3m"], [1.0], "1 sampling weights for 2 data folders"),
        (["a/flickr8k", "b/cc3m"], [1.0, 0.0], "must be a positive number; got 0.0"),
        (["a/flickr8k"], [float("nan")], "must be a positive number; got nan"),
        (["a/photos", "b/photos"], None, "two data folders share a name"),
        ([], None, "at least one folder"),
    ],
)
def test_bad_data_sets_are_clear_errors(paths: list[str], weights: list[float] | None, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        training_sets([Path(p) for p in paths], weights)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["joint-frozen", "joint-bow-captions", "joint-default-v6"])
def test_training_on_two_sets_reports_each_val_set(
    two_sets: tuple[Path, Path], tmp_path: Path, model: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Cached-feature (pooled vectors or, for the shipped recipe, token states) and end-to-end trainers
    alike: both sets' photos train, each val set is measured on its own gallery, the checkpoint names
    both sets, and its caption bank holds both sets' captions."""
    flickr, cc3m = two_sets
    config = load_joint_config(model)
    opts = TrainOptions.from_config(
        config, epochs=2, batch_size=32, patience=5, device="cpu", cache_dir=tmp_path / "cache"
    )
    out = tmp_path / "model.safetensors"
    with caplog.at_level(logging.WARNING, logger="models.training.data"):
        result = train_joint(config, training_sets([flickr, cc3m], [1.0, 2.0]), out, opts)
    assert isinstance(result.report, SetReports)
    flickr_val, cc3m_val = result.report.reports["flickr8k"], result.report.reports["cc3m"]
    assert (flickr_val.images, flickr_val.captions) == (24, 120)  # 5 captions a Flickr8k photo
    assert (cc3m_val.images, cc3m_val.captions) == (20, 20)  # one a CC3M photo
    assert result.report.rsum == pytest.approx(flickr_val.rsum + cc3m_val.rsum)
    assert len(result.history) == 2 and set(result.history[-1].val["sets"]) == {"flickr8k", "cc3m"}
    assert report_from_dict(result.history[-1].val).rsum == pytest.approx(result.history[-1].val_rsum)
    assert out.with_suffix(".png").stat().st_size > 10_000  # a curve per val set
    warned = [r.getMessage() for r in caplog.records if "fewer than 100" in r.getMessage()]
    assert len(warned) == 2 and "flickr8k has only 24 photos" in warned[0]

    info = load_checkpoint(out).info
    assert info["data"] == [{"path": str(flickr), "weight": 1.0}, {"path": str(cc3m), "weight": 2.0}]
    trained_on = [c for d in (flickr, cc3m) for p in load_captioned_photos(d, "train") for c in p.captions]
    bank = read_sidecar(sidecar_path(out))
    assert bank.texts == unique_texts(trained_on)
    assert bank.header["source"] == "flickr8k:train + cc3m:train"


@pytest.mark.slow
def test_evaluate_reports_every_data_set_apart(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.main import app

    flickr, cc3m = two_sets
    report = tmp_path / "eval.json"
    args = ["evaluate", "--model", "joint-frozen", "--data", str(flickr), "--data", str(cc3m)]
    result = CliRunner().invoke(app, [*args, "--report", str(report), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "flickr8k" in result.output and "cc3m" in result.output
    flickr_report = json.loads((tmp_path / "eval-flickr8k.json").read_text())
    cc3m_report = json.loads((tmp_path / "eval-cc3m.json").read_text())
    assert (flickr_report["images"], flickr_report["captions"]) == (24, 120)
    assert (cc3m_report["images"], cc3m_report["captions"]) == (20, 20)
    assert not report.exists()


@pytest.mark.slow
def test_evaluate_measures_a_test_time_preset(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    """`--preset fast` embeds each photo once at the training resolution (the figure that counts for the
    fast preset); an unknown preset is a clear error."""
    from typer.testing import CliRunner

    from cli.main import app

    flickr, _ = two_sets
    runner = CliRunner()
    args = ["evaluate", "--model", "joint-default", "--data", str(flickr), "--device", "cpu"]
    fast = runner.invoke(app, [*args, "--preset", "fast", "--report", str(tmp_path / "fast.json")])
    assert fast.exit_code == 0, fast.output
    assert "+fast" in json.loads((tmp_path / "fast.json").read_text())["model"]
    best = runner.invoke(app, [*args, "--preset", "best", "--report", str(tmp_path / "best.json")])
    assert best.exit_code == 0 and "+" not in json.loads((tmp_path / "best.json").read_text())["model"]
    # as a server serves it in fp32: the checkpoint's own default, which for joint-default is balanced
    served = runner.invoke(app, [*args, "--report", str(tmp_path / "served.json")])
    assert served.exit_code == 0, served.output
    served_key = json.loads((tmp_path / "served.json").read_text())["model"]
    assert served_key == json.loads((tmp_path / "best.json").read_text())["model"] + "+balanced"
    wrong = runner.invoke(app, [*args, "--preset", "fastest"])
    assert wrong.exit_code == 2 and "unknown preset 'fastest'" in wrong.output
    # the int8 image tower as a CPU server runs it (ONNX Runtime, the shipped calibration)
    int8 = runner.invoke(
        app, [*args, "--preset", "fast", "--quantize", "image", "--report", str(tmp_path / "q.json")]
    )
    assert int8.exit_code == 0, int8.output
    quantized = json.loads((tmp_path / "q.json").read_text())
    assert quantized["model"].endswith("+fast+int8image")
    assert abs(quantized["rsum"] - json.loads((tmp_path / "fast.json").read_text())["rsum"]) < 60
    bad = runner.invoke(app, [*args, "--quantize", "int4"])
    assert bad.exit_code == 2 and "unknown quantize 'int4'" in bad.output


@pytest.mark.parametrize("token_states", [True, False])
def test_several_sets_train_from_their_own_caches_as_one_array_would(token_states: bool) -> None:
    """Batches drawn across sets (photos in any view, captions of different lengths) hold exactly
    what one array of all the sets' features, captions padded to the longest, would give."""
    rng = np.random.default_rng(4)

    def features(photos: int, captions: int, tokens: int) -> _Features:
        images = torch.from_numpy(rng.standard_normal((2, photos, 3, 4, 4)).astype(np.float16))
        shape = (photos * captions, tokens, 5) if token_states else (photos * captions, 5)
        texts = torch.from_numpy(
            rng.standard_normal(shape).astype(np.float16 if token_states else np.float32)
        )
        mask = torch.from_numpy(rng.random((photos * captions, tokens)) > 0.3) if token_states else None
        owner = np.repeat(np.arange(photos), captions)
        return _Features(
            images, texts, mask, owner, [list(range(i * captions, (i + 1) * captions)) for i in range(photos)]
        )

    flickr, cc3m = features(7, 5, 6), features(11, 1, 9)
    joined = _join([flickr, cc3m])
    assert not isinstance(joined, _Features)
    images = torch.cat([flickr.images, cc3m.images], dim=1)
    photos, views = torch.randint(0, 18, (40,)), torch.randint(0, 2, (40,))
    assert joined.n_views == 2
    assert torch.equal(joined.image_batch(views, photos), images[views, photos])
    assert joined.captions_of[6] == [30, 31, 32, 33, 34] and joined.captions_of[7] == [35]
    rows = [int(r) for r in torch.randint(0, 46, (30,))] + [0, 45]
    states, mask = joined.text_batch(rows)
    if token_states:
        assert flickr.text_mask is not None and cc3m.text_mask is not None
        texts = torch.cat([_pad_tokens(flickr.texts, 9), cc3m.texts]).float()
        masks = torch.cat([_pad_tokens(flickr.text_mask, 9), cc3m.text_mask])
        assert mask is not None and torch.equal(mask, masks[rows])
    else:
        texts = torch.cat([flickr.texts, cc3m.texts]).float()
        assert mask is None
    assert torch.equal(states, texts[rows])


def test_freshly_extracted_features_come_back_memory_mapped(
    two_sets: tuple[Path, Path], tmp_path: Path
) -> None:
    """A first run holds its cache as a later run does: read from the file, not a second copy in memory."""
    config = load_joint_config("joint-frozen")
    model = JointModel(config)
    photos = load_captioned_photos(two_sets[1], "val")[:6]
    kwargs = {"spec": config.image_tower, "cache_dir": tmp_path, "device": torch.device("cpu")}
    first = image_features(model.image_tower, config.preprocess, [p.path for p in photos], **kwargs)
    again = image_features(model.image_tower, config.preprocess, [p.path for p in photos], **kwargs)
    assert isinstance(first, np.memmap) and isinstance(again, np.memmap)
    assert np.array_equal(first, again)
