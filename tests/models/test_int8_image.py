"""The image tower in static int8: the shipped calibration quantizes the default model's convolutions and
keeps its search results, ranges are measured by `photosearch calibrate-int8` and kept beside the checkpoint,
and ranges measured for other weights, damaged or missing ones are never applied."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image
from typer.testing import CliRunner

from cli.main import app
from models.encoder import Encoder, serving_kept
from models.inference import ServingOptions, load_encoder, serve_encoder
from models.int8_calibration import CalibrationError, calibration_path, int8_saturates, read_calibration
from models.registry import create_encoder
from tests.builders.photos import SHARED, shared_rows
from tests.models.test_onnx_runtime import (
    assert_same_vectors,
    calibrate_on_photos,
    tiny_joint_checkpoint,
    val_photos,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def int8_default(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    """The shipped default model as a CPU with VNNI serves it by default: its int8 image tower (its
    shipped calibration; 7-bit weights on a CPU without VNNI) at its int8 preset, from a fresh export
    cache."""
    cache = tmp_path_factory.mktemp("onnx")
    return load_encoder(
        "joint-default", device="cpu", options=ServingOptions(quantize="image", cache_dir=cache)
    )


def test_the_default_model_serves_photos_through_int8_convolutions(
    int8_default: Encoder, encoder: Encoder
) -> None:
    assert int8_default.quantize == "image"  # type: ignore[attr-defined]
    assert int8_default.key.endswith("+int8image") and not encoder.key.endswith("+int8image")
    graph = onnx.load(str(int8_default.image_session.path))  # type: ignore[attr-defined]
    ops = [node.op_type for node in graph.graph.node]
    convolutions = ops.count("Conv")
    assert convolutions >= 40 and ops.count("DequantizeLinear") >= convolutions  # each with int8 weights
    rows = shared_rows("val", 10, skip=60)
    photos = [Image.open(SHARED / row["image"]).convert("RGB") for row in rows]
    captions = [row["captions"][0] for row in rows]
    int8_default.apply_preset("best")  # type: ignore[attr-defined]  # as the fp32 encoder serves
    try:
        quantized, plain = int8_default.encode_images(photos), encoder.encode_images(photos)
    finally:
        int8_default.apply_preset(None)  # type: ignore[attr-defined]
    cosines = (quantized * plain).sum(axis=1)
    # 7-bit weights where this CPU's int8 products would saturate (no VNNI) cost a little more precision
    assert float(cosines.min()) > (0.96 if int8_saturates() else 0.98) and float(cosines.mean()) > 0.98
    # the text tower stays fp32, and each caption's own photo ranks where it ranked in fp32, or next to it
    texts = int8_default.encode_texts(captions)
    assert_same_vectors(texts, encoder.encode_texts(captions))

    def own_photo_ranks(photo_vectors: np.ndarray) -> np.ndarray:
        scores = texts @ photo_vectors.T  # (caption, photo); caption i describes photo i
        return (scores > scores.diagonal()[:, None]).sum(axis=1)

    int8_ranks, fp32_ranks = own_photo_ranks(quantized), own_photo_ranks(plain)
    assert np.abs(int8_ranks - fp32_ranks).max() <= 1
    assert abs(int((int8_ranks == 0).sum()) - int((fp32_ranks == 0).sum())) <= 1


def test_the_shipped_calibration_was_measured_for_the_shipped_weights(encoder: Encoder) -> None:
    path = calibration_path(encoder)
    assert path is not None and path.name == "joint-default.int8.json"
    data = json.loads(path.read_text())
    assert data["checkpoint_sha256"] == encoder.checkpoint_digest and data["photos"] >= 100
    # measured (benchmarks/MODELS.md): with 7-bit weights best int8 is 1.3 under fp32 on CC3M photo→text
    assert data["seven_bit_by_default"] is False


def test_a_cpu_that_needs_7_bit_weights_serves_int8_only_where_they_were_measured_within_the_rule(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """quantize auto on a CPU without VNNI: joint-default (its 7-bit int8 measured outside the rule) is
    served in fp32 at its fp32 preset, both towers, saying why; joint-default-v5 (7-bit int8 not measured)
    and every checkpoint on a CPU with VNNI keep the int8 image tower (joint-default its int8 text tower
    too)."""
    import models.onnx_runtime as runtime
    from models.joint.config import default_preset

    v5 = create_encoder("joint-default-v5", device="cpu")
    for saturates in (False, True):
        monkeypatch.setattr(runtime, "int8_saturates", lambda saturates=saturates: saturates)
        with caplog.at_level(logging.INFO, logger="models.onnx_runtime"):
            quantize, calibration = runtime.resolve_quantize(encoder, "auto")
        assert quantize == ("none" if saturates else "all")
        assert (calibration is None) is saturates and ("lacks VNNI" in caplog.text) is saturates
        assert runtime.resolve_quantize(v5, "auto")[0] == "image"
        assert runtime.resolve_quantize(encoder, "image")[0] == "image"  # asked for: int8 all the same
        caplog.clear()
    assert default_preset(encoder.model.config, int8=False) == "balanced"  # type: ignore[attr-defined]


def test_calibrating_writes_ranges_these_weights_alone_may_use(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    cache = tmp_path / "onnx"
    plain = create_encoder(str(checkpoint), device="cpu")
    written = calibrate_on_photos(plain, 6, cache)
    assert written == tmp_path / "tiny.int8.json"
    assert json.loads(written.read_text())["checkpoint_sha256"] == plain.checkpoint_digest
    served = load_encoder(str(checkpoint), device="cpu", options=ServingOptions(cache_dir=cache))
    assert served.quantize == "image" and served.key == f"{plain.key}+balanced+int8image"  # type: ignore[attr-defined]
    photos = val_photos(4)
    assert float((served.encode_images(photos) * plain.encode_images(photos)).sum(axis=1).min()) > 0.95

    tiny_joint_checkpoint(checkpoint, seed=2)  # new weights in the same file: the ranges are not theirs
    with pytest.raises(CalibrationError, match="measured for other weights.*photosearch calibrate-int8"):
        load_encoder(str(checkpoint), device="cpu", options=ServingOptions(quantize="image", cache_dir=cache))
    with caplog.at_level(logging.WARNING, logger="models.onnx_runtime"):
        fallback = load_encoder(str(checkpoint), device="cpu", options=ServingOptions(cache_dir=cache))
    assert "measured for other weights" in caplog.text and "fp32" in caplog.text
    assert fallback.quantize == "none" and "+int8" not in fallback.key  # type: ignore[attr-defined]
    assert_same_vectors(
        fallback.encode_images(photos), create_encoder(str(checkpoint), device="cpu").encode_images(photos)
    )


def test_new_ranges_make_a_new_int8_file(tmp_path: Path) -> None:
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    cache, plain = tmp_path / "onnx", create_encoder(str(checkpoint), device="cpu")
    options = ServingOptions(quantize="image", cache_dir=cache)
    calibrate_on_photos(plain, 4, cache)
    first = load_encoder(str(checkpoint), device="cpu", options=options).image_session.path  # type: ignore[attr-defined]
    calibrate_on_photos(plain, 4, cache, skip=100)  # other photos, other ranges
    second = load_encoder(str(checkpoint), device="cpu", options=options).image_session.path  # type: ignore[attr-defined]
    assert first != second and first.parent == second.parent


def test_missing_or_damaged_ranges_are_refused_with_the_command_that_measures_them(tmp_path: Path) -> None:
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    options = ServingOptions(quantize="image", cache_dir=tmp_path / "onnx")
    with pytest.raises(CalibrationError, match=r"no int8 calibration.*photosearch calibrate-int8 PHOTOS"):
        load_encoder(str(checkpoint), device="cpu", options=options)
    auto = load_encoder(str(checkpoint), device="cpu", options=ServingOptions(cache_dir=tmp_path / "onnx"))
    assert auto.quantize == "none"  # type: ignore[attr-defined]  # auto: fp32 without ranges, quietly
    (tmp_path / "tiny.int8.json").write_text('{"checkpoint_sha256": ')
    with pytest.raises(CalibrationError, match="unreadable"):
        load_encoder(str(checkpoint), device="cpu", options=options)


def test_the_calibrate_int8_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PHOTOSEARCH_INFERENCE__ONNX_CACHE_DIR", str(tmp_path / "onnx"))
    from app.core.config import get_settings

    get_settings.cache_clear()
    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    folders = [tmp_path / "photos", tmp_path / "more"]
    for folder, rows in zip(folders, (shared_rows("train", 5), shared_rows("train", 8)[5:]), strict=True):
        folder.mkdir()
        for row in rows:
            (folder / Path(row["image"]).name).write_bytes((SHARED / row["image"]).read_bytes())
    done = runner.invoke(
        app, ["calibrate-int8", str(folders[0]), "--model", str(checkpoint), "--photos", "3"]
    )
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "tiny.int8.json").read_text())["photos"] == 3
    both = runner.invoke(
        app, ["calibrate-int8", *map(str, folders), "--model", str(checkpoint), "--photos", "20"]
    )
    assert both.exit_code == 0, both.output  # several sources: the photos of all of them (5 + 3)
    assert json.loads((tmp_path / "tiny.int8.json").read_text())["photos"] == 8
    assert "seven_bit_by_default" not in json.loads((tmp_path / "tiny.int8.json").read_text())
    measured = runner.invoke(
        app, ["calibrate-int8", str(folders[0]), "--model", str(checkpoint), "--no-seven-bit-by-default"]
    )
    assert measured.exit_code == 0, measured.output
    plain = create_encoder(str(checkpoint), device="cpu")
    assert read_calibration(plain).seven_bit_by_default is False
    data = json.loads((tmp_path / "tiny.int8.json").read_text())
    (tmp_path / "tiny.int8.json").write_text(json.dumps({**data, "seven_bit_by_default": "no"}))
    with pytest.raises(
        CalibrationError, match="unreadable.*seven_bit_by_default must be true, false or absent"
    ):
        read_calibration(plain)
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = runner.invoke(app, ["calibrate-int8", str(empty), "--model", str(checkpoint)])
    assert refused.exit_code == 2 and "no photos under" in refused.output
    get_settings.cache_clear()


def test_the_default_preset_follows_the_image_towers_precision(
    int8_default: Encoder, encoder: Encoder, minilm_encoder: Encoder, tmp_path: Path
) -> None:
    """Each checkpoint serves the fastest way within 1 R@1 point of its best fp32 figures (benchmarks/
    MODELS.md). joint-default: 288 px + mirror (balanced) in both precisions (with both towers int8 under
    quantize auto on a CPU with VNNI: tests/models/test_onnx_runtime.py). joint-default-v6: its shipped
    setting (288 + 256 px, each mirrored) with the int8 image tower under quantize auto, the same in fp32
    otherwise. joint-default-v5: 320 px + mirror, int8 under quantize auto. joint-default-v4: one 288 px
    pass in fp32. joint-flickr8k (the code's defaults): best in fp32, balanced with the int8 image tower."""
    assert int8_default.quantize == "image" and int8_default.preset == "balanced"  # type: ignore[attr-defined]
    assert int8_default.key == f"{encoder.weights_key}+balanced+int8image"
    assert encoder.key == encoder.weights_key  # create_encoder: the checkpoint's test_time as stored (best)
    torch_runtime = ServingOptions(runtime="torch")
    with serving_kept(encoder):  # the session's encoder, served in PyTorch as load_encoder would
        fp32 = serve_encoder(encoder, torch_runtime)
        assert fp32.preset == "balanced" and fp32.key == f"{encoder.weights_key}+balanced"  # type: ignore[attr-defined]
    v6 = load_encoder(
        "joint-default-v6", device="cpu", options=ServingOptions(quantize="image", cache_dir=tmp_path)
    )
    assert v6.quantize == "image" and v6.preset == "best"  # type: ignore[attr-defined]
    assert v6.key == f"{v6.weights_key}+int8image" and v6.weights_key != encoder.weights_key
    with serving_kept(minilm_encoder):
        v6_fp32 = serve_encoder(minilm_encoder, torch_runtime)
        assert v6_fp32.preset == "best" and v6_fp32.key == v6.weights_key  # type: ignore[attr-defined]
    v5 = load_encoder("joint-default-v5", device="cpu", options=ServingOptions(cache_dir=tmp_path))
    assert v5.quantize == "image" and v5.preset == "balanced"  # type: ignore[attr-defined]
    assert v5.key.endswith("+balanced+int8image") and v5.weights_key != encoder.weights_key
    v5_fp32 = load_encoder("joint-default-v5", device="cpu", options=ServingOptions(runtime="torch"))
    assert v5_fp32.preset == "balanced" and v5_fp32.key == f"{v5.weights_key}+balanced"  # type: ignore[attr-defined]
    v4 = load_encoder("joint-default-v4", device="cpu", options=ServingOptions(cache_dir=tmp_path))
    assert v4.quantize == "none" and v4.preset == "fast" and v4.hflip is False  # type: ignore[attr-defined]
    assert v4.key.endswith("+fast") and v4.weights_key != encoder.weights_key
    earlier = load_encoder("joint-flickr8k", device="cpu", options=ServingOptions(cache_dir=tmp_path))
    assert earlier.quantize == "image" and earlier.preset == "balanced"  # type: ignore[attr-defined]
    assert "+balanced+int8image" in earlier.key and earlier.extra_sizes == [] and earlier.hflip  # type: ignore[attr-defined]
    torch_earlier = load_encoder("joint-flickr8k", device="cpu", options=ServingOptions(runtime="torch"))
    assert torch_earlier.preset == "best"  # type: ignore[attr-defined]


def test_the_model_follows_how_the_store_embedded_these_weights(tmp_path: Path, db_url: str) -> None:
    """A store embedded in fp32 (an earlier default, a GPU indexer) is served and extended in fp32 by a
    CPU whose default is int8, never left unsearchable; explicit settings are obeyed as given."""
    from app.storage.db import make_engine, migrate, session_factory, transaction
    from app.storage.stored_models import as_stored
    from app.storage.tables import Collection, Photo, PhotoEmbedding

    checkpoint = tiny_joint_checkpoint(tmp_path / "tiny.safetensors", seed=1)
    cache = tmp_path / "onnx"
    plain = create_encoder(str(checkpoint), device="cpu")
    calibrate_on_photos(plain, 4, cache)
    fp32_best = plain.apply_preset("best").key  # type: ignore[attr-defined]
    engine = make_engine(db_url)
    migrate(engine)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        collection = Collection(name="c", root="/c")
        session.add(collection)
        session.flush()
        for i in range(3):
            photo = Photo(
                collection_id=collection.id, path=f"/c/{i}.jpg", size=1, mtime_ns=1, sha256=f"{i:064x}"
            )
            session.add(photo)
            session.flush()
            session.add(PhotoEmbedding(photo_id=photo.id, model_key=fp32_best, vector=b"\0" * 4 * plain.dim))
        session.add(PhotoEmbedding(photo_id=photo.id, model_key="other-model@0123456789ab", vector=b"\0" * 8))

    def served(**options: str) -> Encoder:
        settings = ServingOptions(cache_dir=cache, **options)  # type: ignore[arg-type]
        return as_stored(load_encoder(str(checkpoint), device="cpu", options=settings), settings, sessions)

    followed = served()
    assert followed.key == fp32_best and followed.quantize == "none"  # type: ignore[attr-defined]
    photos = val_photos(2)
    assert_same_vectors(followed.encode_images(photos), plain.encode_images(photos))
    assert served(preset="best").key == f"{fp32_best}+int8image"  # a preset asked for is used
    assert served(quantize="image").key.endswith("+balanced+int8image")
    with transaction(sessions) as session:  # once the store holds the default's vectors, it keeps them
        session.add(PhotoEmbedding(photo_id=photo.id, model_key=served(quantize="image").key, vector=b"\0"))
    assert served().key.endswith("+balanced+int8image")
    engine.dispose()


def test_a_clip_model_calibrates_and_serves_its_image_tower_in_int8(tmp_path: Path) -> None:
    """The clip family's ViT through the same calibration and quantization code (random weights, saved
    and loaded through the real loading path: no CLIP weights exist here)."""
    import torch

    from models.clip.encoder import random_clip_encoder
    from models.clip.export import save_clip_checkpoint
    from models.clip.tiny import tiny_clip_config

    saved = save_clip_checkpoint(
        random_clip_encoder(tiny_clip_config(), torch.device("cpu"), seed=5), tmp_path / "clip.safetensors"
    )
    plain = create_encoder(str(saved), device="cpu")
    calibrate_on_photos(plain, 6, tmp_path / "onnx")
    served = load_encoder(str(saved), device="cpu", options=ServingOptions(cache_dir=tmp_path / "onnx"))
    assert served.quantize == "image" and served.key == f"{plain.key}+int8image"  # type: ignore[attr-defined]
    photos = val_photos(4)
    assert float((served.encode_images(photos) * plain.encode_images(photos)).sum(axis=1).min()) > 0.95
    texts = ["a dog on a beach", "two children playing football"]
    assert_same_vectors(served.encode_texts(texts), plain.encode_texts(texts))


def test_int8_weights_are_7_bit_only_where_int8_products_would_saturate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """x86-64 without VNNI sums pairs of uint8 × int8 products in 16 bits: there (and where the CPU cannot
    be read) the image tower gets 7-bit weights, in an int8 file of its own name; elsewhere full range."""
    import models.int8_calibration as int8

    cases = (
        ("x86_64", "flags : fpu sse4_2 avx avx2 fma", True),  # AVX2 only
        ("x86_64", "flags : avx2 avx512f avx512bw", True),  # AVX-512 without VNNI
        ("x86_64", "flags : avx2 avx512f avx512_vnni", False),
        ("AMD64", "flags : avx2 avx_vnni", False),
        ("x86_64", None, True),
        ("aarch64", None, False),
        ("arm64", "Features : fp asimd", False),
    )
    for machine, flags, saturates in cases:
        monkeypatch.setattr(int8.platform, "machine", lambda machine=machine: machine)
        monkeypatch.setattr(int8, "_cpu_flags", lambda flags=flags: flags)
        assert int8.int8_saturates() is saturates, (machine, flags)
    calibration = int8.Calibration(Path("x.int8.json"), "0" * 64, 128, {"t": {"lowest": 0, "highest": 1}})
    assert calibration.file_digest(False) == calibration.digest != calibration.file_digest(True)
