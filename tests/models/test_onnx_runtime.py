"""CPU inference through ONNX Runtime: the exported towers embed as PyTorch does (real photos, real
captions, the shipped model and a clip model through the real loading code), exports are cached by the
checkpoint's bytes, and a damaged cache file is exported again."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from PIL import Image

from models.checkpoint import save_checkpoint
from models.clip.encoder import random_clip_encoder
from models.clip.export import save_clip_checkpoint
from models.clip.tiny import tiny_clip_config
from models.encoder import Encoder, serving_kept
from models.errors import InvalidInputError
from models.inference import ServingOptions, load_encoder, serve_encoder
from models.joint.config import ServingConfig
from models.joint.model import JointModel
from models.joint.vocab import build_vocab
from models.onnx_export import export_folder
from models.registry import create_encoder
from models.runtime import resolve_runtime
from tests.builders.photos import SHARED, shared_rows
from tests.builders.tiny_models import tiny_config
from tests.models.test_model_configs import REFERENCE, REFERENCE_TEXTS

MAX_ABS = 1e-4  # per coordinate, unit vectors
MIN_COSINE = 0.9999


def assert_same_vectors(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape and got.dtype == np.float32
    assert float(np.abs(got - expected).max()) < MAX_ABS
    assert float((got * expected).sum(axis=1).min()) > MIN_COSINE


def val_photos(count: int, skip: int = 0) -> list[Image.Image]:
    return [Image.open(SHARED / row["image"]).convert("RGB") for row in shared_rows("val", count, skip)]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh export cache, shared by this module's tests of the shipped default (one export of each
    graph: MPNet's text tower takes a minute or two to export and quantize)."""
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="module")
def onnx_encoder(onnx_cache: Path) -> Encoder:
    """The shipped default model served through ONNX Runtime (exported into a fresh cache)."""
    # fp32 and the shipped test-time setting: equal to PyTorch as create_encoder builds it
    options = ServingOptions(runtime="onnx", quantize="none", preset="best", cache_dir=onnx_cache)
    return load_encoder("joint-default", device="cpu", options=options)


def test_the_default_model_embeds_photos_and_captions_as_pytorch_does(
    encoder: Encoder, onnx_encoder: Encoder
) -> None:
    rows = shared_rows("val", 6, skip=20)
    photos = [Image.open(SHARED / row["image"]).convert("RGB") for row in rows]
    captions = [c for row in rows for c in row["captions"]]
    assert onnx_encoder.runtime == "onnx" and encoder.runtime == "torch"  # type: ignore[attr-defined]
    assert_same_vectors(onnx_encoder.encode_images(photos), encoder.encode_images(photos))
    assert_same_vectors(onnx_encoder.encode_texts(captions), encoder.encode_texts(captions))
    # the same vectors: an index built on one runtime is served by the other
    assert onnx_encoder.key == encoder.key


def test_the_onnx_path_matches_the_shipped_reference_vectors(onnx_encoder: Encoder) -> None:
    reference = np.load(REFERENCE)
    assert onnx_encoder.key == str(reference["joint-default.key"])
    assert_same_vectors(onnx_encoder.encode_images(val_photos(2)), reference["joint-default.images"])
    assert_same_vectors(onnx_encoder.encode_texts(REFERENCE_TEXTS), reference["joint-default.texts"])


def test_the_best_hit_of_a_caption_is_the_same_photo_on_both_runtimes(
    encoder: Encoder, onnx_encoder: Encoder
) -> None:
    rows = shared_rows("val", 8, skip=40)
    photos = [Image.open(SHARED / row["image"]).convert("RGB") for row in rows]
    queries = [row["captions"][0] for row in rows]
    torch_hits = (encoder.encode_texts(queries) @ encoder.encode_images(photos).T).argmax(axis=1)
    onnx_hits = (onnx_encoder.encode_texts(queries) @ onnx_encoder.encode_images(photos).T).argmax(axis=1)
    assert list(onnx_hits) == list(torch_hits)


def tiny_joint_checkpoint(path: Path, seed: int, test_time: ServingConfig | None = None) -> Path:
    """A tiny joint model (scratch CNN, bag of words) with random weights, saved as a checkpoint."""
    torch.manual_seed(seed)
    tiny = tiny_config("bow")
    config = tiny.replace(
        text_tower=tiny.text_tower.model_copy(update={"vocab": tuple(build_vocab(["a dog"] * 2))}),
        test_time=test_time,
    )
    model = JointModel(config).eval()
    return save_checkpoint(path, config=config, state_dict=model.checkpoint_state())


def test_a_changed_checkpoint_never_uses_the_stale_export(tmp_path: Path) -> None:
    cache = tmp_path / "onnx"
    options = ServingOptions(runtime="onnx", quantize="none", cache_dir=cache)
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    photos = val_photos(3)
    first = load_encoder(str(checkpoint), device="cpu", options=options)
    first_vectors = first.encode_images(photos)
    tiny_joint_checkpoint(checkpoint, seed=2)  # new weights, same file name
    second = load_encoder(str(checkpoint), device="cpu", options=options)
    torch_second = create_encoder(str(checkpoint), device="cpu")
    assert_same_vectors(second.encode_images(photos), torch_second.encode_images(photos))
    assert float(np.abs(second.encode_images(photos) - first_vectors).max()) > 0.01
    assert export_folder(cache, first) != export_folder(cache, second)
    assert len(list(cache.iterdir())) == 2


def test_a_damaged_cached_file_is_exported_again_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    options = ServingOptions(runtime="onnx", quantize="none", cache_dir=tmp_path / "onnx")
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    photos = val_photos(2)
    expected = create_encoder(str(checkpoint), device="cpu").encode_images(photos)
    first = load_encoder(str(checkpoint), device="cpu", options=options)
    exported = first.image_session.path  # type: ignore[attr-defined]
    for damage in (b"", exported.read_bytes()[:1000]):  # emptied; cut short
        exported.write_bytes(damage)
        with caplog.at_level(logging.WARNING, logger="models.onnx_runtime"):
            again = load_encoder(str(checkpoint), device="cpu", options=options)
        assert "damaged" in caplog.text and str(exported) in caplog.text
        caplog.clear()
        assert_same_vectors(again.encode_images(photos), expected)
    assert not [p for p in exported.parent.iterdir() if ".tmp-" in p.name]  # no temp files left behind


def test_a_clip_model_embeds_as_pytorch_does_through_the_real_loading_code(tmp_path: Path) -> None:
    saved = save_clip_checkpoint(
        random_clip_encoder(tiny_clip_config(), torch.device("cpu"), seed=5), tmp_path / "clip.safetensors"
    )
    reference = create_encoder(str(saved), device="cpu")
    served = load_encoder(
        str(saved), device="cpu", options=ServingOptions(runtime="onnx", cache_dir=tmp_path / "onnx")
    )
    assert served.runtime == "onnx" and served.key == reference.key  # type: ignore[attr-defined]
    photos = val_photos(3)
    texts = ["a dog on a beach", "two children playing football", "a man in a red jacket climbs a rock"]
    assert_same_vectors(served.encode_images(photos), reference.encode_images(photos))
    assert_same_vectors(served.encode_texts(texts), reference.encode_texts(texts))


def test_runtime_choice() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_runtime("auto", cpu) == "onnx" and resolve_runtime("auto", cuda) == "torch"
    assert resolve_runtime("torch", cpu) == "torch"
    with pytest.raises(InvalidInputError, match="CPU only"):
        resolve_runtime("onnx", cuda)
    with pytest.raises(InvalidInputError, match=r"unknown runtime 'tensorrt': use one of \['auto'"):
        resolve_runtime("tensorrt", cpu)


def test_quantized_towers_are_keyed_apart_and_need_onnx(tmp_path: Path) -> None:
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    plain = create_encoder(str(checkpoint), device="cpu")
    calibrate_on_photos(plain, 4, tmp_path / "onnx")
    options = ServingOptions(runtime="onnx", quantize="all", cache_dir=tmp_path / "onnx")
    quantized = load_encoder(str(checkpoint), device="cpu", options=options)
    assert quantized.key == f"{plain.key}+balanced+int8all"
    assert quantized.image_session.path.name.startswith("image-int8-")  # type: ignore[attr-defined]
    photos = val_photos(3)
    cosines = (quantized.encode_images(photos) * plain.encode_images(photos)).sum(axis=1)
    assert cosines.min() > 0.95  # close, not equal: which is why it is keyed apart
    with pytest.raises(InvalidInputError, match="int8 quantization runs through ONNX Runtime"):
        serve_encoder(
            create_encoder(str(checkpoint), device="cpu"), ServingOptions(runtime="torch", quantize="all")
        )


def test_auto_takes_the_int8_text_tower_where_the_checkpoint_asks_and_the_cpu_has_vnni(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """quantize auto and a checkpoint whose test_time says text_int8_by_default: both towers int8 on a CPU
    whose int8 products do not saturate, the text tower in fp32 where they do (its int8 text tower was
    not measured within the rule there); the text tower alone when the checkpoint serves photos in fp32;
    a checkpoint without the flag keeps its fp32 text tower. Each way under its own key."""
    import models.onnx_runtime as runtime

    cache = tmp_path / "onnx"
    checkpoints = {
        "asked": ServingConfig(text_int8_by_default=True),
        "fp32 photos": ServingConfig(int8_by_default=False, text_int8_by_default=True),
        "plain": None,
    }
    paths = {}
    for name, test_time in checkpoints.items():
        paths[name] = tiny_joint_checkpoint(tmp_path / f"{name}.safetensors", seed=1, test_time=test_time)
        calibrate_on_photos(create_encoder(str(paths[name]), device="cpu"), 4, cache)

    def served(name: str) -> str:
        options = ServingOptions(runtime="onnx", cache_dir=cache)
        return str(load_encoder(str(paths[name]), device="cpu", options=options).quantize)  # type: ignore[attr-defined]

    monkeypatch.setattr(runtime, "int8_saturates", lambda: False)
    assert [served(name) for name in checkpoints] == ["all", "text", "image"]
    monkeypatch.setattr(runtime, "int8_saturates", lambda: True)
    assert [served(name) for name in checkpoints] == ["image", "none", "image"]
    asked = create_encoder(str(paths["asked"]), device="cpu")
    assert (
        asked.text_int8_by_default
        and not create_encoder(str(paths["plain"]), device="cpu").text_int8_by_default
    )


def test_the_int8_text_tower_scales_each_output_channel_and_keeps_the_captions_ranks(
    encoder: Encoder, onnx_cache: Path, tmp_path: Path
) -> None:
    """quantize=text: the default's MPNet text tower in int8, a file and a key of its own, and caption
    vectors close enough to fp32 that a caption's photo ranks as before. Each weight matrix has a scale per
    output channel (one scale per matrix cost the sentence encoders most of their precision); the
    feed-forward down-projections, whose GELU inputs hold a few large values among many small ones,
    multiply 8-bit weights and activations in blocks of 32 input rows, each block with its own scales (with
    every matrix dynamic, one activation scale for them put some captions at 0.85 of fp32 and the mean at
    0.95)."""
    from models.caption_bank import cache_path, read_sidecar, sidecar_path

    options = ServingOptions(runtime="onnx", quantize="text", cache_dir=onnx_cache)
    quantized = load_encoder("joint-default", device="cpu", options=options)
    assert quantized.key.endswith("+int8text")
    path = quantized.text_session.path  # type: ignore[attr-defined]
    assert path.name == "text-int8-per-channel-wide-blocks.onnx"
    graph = onnx.load(str(path))
    scales = {i.name: numpy_helper.to_array(i).size for i in graph.graph.initializer}
    products = [n for n in graph.graph.node if n.op_type == "MatMulInteger"]
    weights = [n.input[1].removesuffix("_quantized") for n in products]
    assert len(weights) >= 60 and all(scales[f"{weight}_scale"] > 1 for weight in weights)  # 12 layers × 5
    blocks = [n for n in graph.graph.node if n.op_type == "MatMulNBits"]
    assert [n.name.removesuffix("_Q8") for n in blocks] == [
        f"/layer.{i}/output/dense/MatMul" for i in range(12)
    ]
    settings = [{a.name: a.i for a in n.attribute} for n in blocks]
    assert all((s["bits"], s["block_size"], s["K"], s["N"]) == (8, 32, 3072, 768) for s in settings), settings
    rows = shared_rows("val", 12, skip=80)
    captions = [row["captions"][0] for row in rows]
    texts, plain = quantized.encode_texts(captions), encoder.encode_texts(captions)
    cosines = (texts * plain).sum(axis=1)
    assert float(cosines.min()) > 0.98 and float(cosines.mean()) > 0.99
    photos = encoder.encode_images(val_photos(12, skip=80))  # the photos of those rows
    # every caption whose own photo fp32 ranks first still finds it first (where fp32 ranks another
    # photo first, two wrong photos may be within a rounding of each other)
    found = (plain @ photos.T).argmax(axis=1) == np.arange(12)
    assert found.sum() >= 9 and ((texts @ photos.T).argmax(axis=1) == np.arange(12))[found].all()
    # its captions' vectors are cached apart from those of a text tower quantized another way
    sidecar = read_sidecar(sidecar_path(quantized.checkpoint_path))  # type: ignore[arg-type]
    cached = cache_path(tmp_path, quantized, sidecar)
    quantized.text_session.path = path.with_name("text-int8.onnx")  # type: ignore[attr-defined]
    assert cache_path(tmp_path, quantized, sidecar) != cached


def test_the_default_is_served_its_measured_way_on_this_cpu(
    encoder: Encoder, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left to its defaults, a CPU with VNNI serves joint-default `balanced` (288 px + mirror) with both
    towers int8, under a key that says so; its photos and captions stay close to fp32 `balanced`. A CPU
    without VNNI serves it `balanced` in fp32 (its 7-bit int8 was measured outside the rule)."""
    import models.onnx_runtime as runtime
    from models.int8_calibration import int8_saturates

    options = ServingOptions(runtime="onnx", cache_dir=onnx_cache)
    with serving_kept(encoder):  # the session's encoder, served in PyTorch as load_encoder would
        fp32 = serve_encoder(encoder, ServingOptions(runtime="torch"))
        assert fp32.key == f"{encoder.weights_key}+balanced"
        if not int8_saturates():
            served = load_encoder("joint-default", device="cpu", options=options)
            assert served.quantize == "all" and served.preset == "balanced"  # type: ignore[attr-defined]
            assert served.key == f"{encoder.weights_key}+balanced+int8all"
            assert served.text_session.path.name == "text-int8-per-channel-wide-blocks.onnx"  # type: ignore[attr-defined]
            photos = val_photos(6, skip=40)
            images = (served.encode_images(photos) * fp32.encode_images(photos)).sum(axis=1)
            assert float(images.min()) > 0.96
            captions = [row["captions"][0] for row in shared_rows("val", 48, skip=80)]
            texts = (served.encode_texts(captions) * fp32.encode_texts(captions)).sum(axis=1)
            assert float(texts.min()) > 0.98 and float(texts.mean()) > 0.99
        fp32_key = fp32.key
    monkeypatch.setattr(runtime, "int8_saturates", lambda: True)
    without_vnni = load_encoder("joint-default", device="cpu", options=options)
    assert without_vnni.quantize == "none" and without_vnni.key == fp32_key  # type: ignore[attr-defined]


def test_the_block_wise_quantizer_leaves_the_processes_logging_as_it_was() -> None:
    """Importing ONNX Runtime's block-wise quantizer sets up the root logger at INFO; photosearch imports
    it so that a process's logging stays as it was (a fresh interpreter: the import happens once)."""
    import subprocess
    import sys

    check = (
        "import logging; from models.onnx_export import matmul_nbits_quantizer as q; q(); "
        "root = logging.getLogger(); assert not root.handlers and root.level == logging.WARNING, root"
    )
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, cwd=repo)
    assert done.returncode == 0, done.stderr


def test_a_cpu_whose_int8_products_saturate_gets_a_7_bit_text_tower(
    minilm_encoder: Encoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without VNNI, int8 products are summed in 16 bits and saturate with full-range weights: the dynamic
    int8 text tower is then built with 7-bit weights, in a file of its own, and still ranks as fp32 does
    (MiniLM's, joint-default-v6: the default's MPNet tower is never served so by default, since it loses
    4-5 R@1 so: test_the_default_is_served_its_measured_way_on_this_cpu checks that auto keeps it in fp32
    on such a CPU)."""
    import models.onnx_runtime as runtime

    encoder = minilm_encoder
    monkeypatch.setattr(runtime, "int8_saturates", lambda: True)
    options = ServingOptions(runtime="onnx", quantize="text", cache_dir=tmp_path / "onnx")
    quantized = load_encoder("joint-default-v6", device="cpu", options=options)
    path = quantized.text_session.path  # type: ignore[attr-defined]
    assert path.name == "text-int8-per-channel-7bit.onnx"
    graph = onnx.load(str(path))
    assert not [n for n in graph.graph.node if n.op_type == "MatMulNBits"]  # every matrix dynamic, 7-bit
    weights = [numpy_helper.to_array(i) for i in graph.graph.initializer if i.name.endswith("_quantized")]
    assert weights and max(int(np.abs(w.astype(np.int16)).max()) for w in weights) <= 64
    captions = [row["captions"][0] for row in shared_rows("val", 12, skip=80)]
    cosines = (quantized.encode_texts(captions) * encoder.encode_texts(captions)).sum(axis=1)
    assert float(cosines.min()) > 0.97


def calibrate_on_photos(encoder: Encoder, count: int, cache: Path, skip: int = 0) -> Path:
    """Activation ranges of `count` shared train photos, written beside the encoder's checkpoint."""
    from models.int8_calibration import calibrate
    from models.onnx_export import tower_graphs
    from models.onnx_runtime import exported

    (graph,) = [g for g in tower_graphs(encoder) if g.name == "image"]
    paths = [SHARED / row["image"] for row in shared_rows("train", count, skip)]
    return calibrate(encoder, paths, exported(graph, export_folder(cache, encoder)))
