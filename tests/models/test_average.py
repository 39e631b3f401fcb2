"""`photosearch average`: checkpoints of one joint model averaged tensor by tensor into one that is
served like any other, with its own query bank and caption bank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from typer.testing import CliRunner

from cli.main import app
from models.caption_bank import sidecar_path
from models.checkpoint import load_checkpoint, save_checkpoint
from models.joint.model import JointModel
from models.joint.vocab import build_vocab
from models.query_bank import split_bank_tensors
from models.registry import create_encoder
from tests.builders.tiny_models import tiny_config
from tests.models.test_onnx_runtime import val_photos

runner = CliRunner()


def tiny_checkpoint(path: Path, seed: int, vocab: tuple[str, ...] = ("a dog",), **extra: object) -> Path:
    """A tiny joint model (scratch CNN, bag of words) with random weights; extra: further config keys."""
    torch.manual_seed(seed)
    tiny = tiny_config("bow", **extra)
    config = tiny.replace(
        text_tower=tiny.text_tower.model_copy(update={"vocab": tuple(build_vocab(vocab * 2))})
    )
    return save_checkpoint(path, config=config, state_dict=JointModel(config).eval().checkpoint_state())


def test_the_average_is_each_tensor_weighed_by_its_share_and_is_served(
    tiny_data: Path, tmp_path: Path
) -> None:
    bank = {"photos": 8, "captions": 16, "k": 4, "beta": 0.5}
    first = tiny_checkpoint(tmp_path / "a.safetensors", seed=1, query_bank=bank)
    # another name (another stage of one model) is the same model
    second = tiny_checkpoint(tmp_path / "b.safetensors", seed=2, query_bank=bank, name="tiny-stage-2")
    out = tmp_path / "avg.safetensors"
    args = ["average", str(first), str(second), "--out", str(out), "--data", str(tiny_data)]
    done = runner.invoke(app, [*args, "--share", "1", "--share", "3", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    a, b, avg = (split_bank_tensors(load_checkpoint(p).state_dict) for p in (first, second, out))
    assert set(avg) == set(a)
    for key, tensor in avg.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, 0.25 * a[key] + 0.75 * b[key])
    moved = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert moved  # the two really differ, so the average is neither of them
    info = load_checkpoint(out).info["averaged"]
    assert [i["checkpoint"] for i in info] == ["a.safetensors", "b.safetensors"]
    assert [i["share"] for i in info] == [0.25, 0.75]
    encoder = create_encoder(str(out), device="cpu")
    # a query bank of its own: the photos embedded by the averaged weights, as many as the inputs had
    assert encoder.query_bank is not None and encoder.query_bank.images.shape[0] == 8
    served = encoder.encode_images(val_photos(2))
    assert served.shape == (2, 32) and np.allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)
    assert sidecar_path(out).is_file()  # the caption bank of the data's train captions
    assert (tmp_path / "a.safetensors").read_bytes() == first.read_bytes()  # inputs left as they were


def test_bad_averages_are_refused_before_anything_is_written(tiny_data: Path, tmp_path: Path) -> None:
    first = tiny_checkpoint(tmp_path / "a.safetensors", seed=1)
    second = tiny_checkpoint(tmp_path / "b.safetensors", seed=2)
    other = tiny_checkpoint(tmp_path / "c.safetensors", seed=3, vocab=("a red car",))
    out = tmp_path / "avg.safetensors"
    data = ["--data", str(tiny_data), "--device", "cpu"]
    for args, message in (
        ([str(first), "--out", str(out)], "at least two checkpoints"),
        ([str(first), str(first), "--out", str(out)], "named twice"),
        ([str(first), str(second), "--out", str(first)], "--out must be another file"),
        ([str(first), str(other), "--out", str(out)], "another model than"),
        ([str(first), str(second), "--out", str(out), "--share", "1"], "one share above 0 per checkpoint"),
        ([str(first), str(second), "--out", str(out), "--share", "1", "--share", "0"], "one share above 0"),
        ([str(first), str(tmp_path / "gone.safetensors"), "--out", str(out)], "checkpoint file not found"),
    ):
        result = runner.invoke(app, ["average", *args, *data])
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.output.split()), (message, result.output)
    assert not out.exists()
