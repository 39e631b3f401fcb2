"""Decoding photo files for batch embedding: worker processes, reduced-scale JPEG decoding, crashes."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.images import decode_photo
from models.loading import CRASH_ON_ENV, iterate_photo_batches
from models.preprocess import PreprocessConfig
from tests.builders.photos import SHARED, corrupt_jpeg, shared_rows

TRANSFORM = PreprocessConfig(image_size=224)


def camera_jpeg(path: Path, source: Path, size: tuple[int, int] = (2400, 1800), orientation: int = 1) -> Path:
    """A camera-sized JPEG made by enlarging a real photo, with an EXIF orientation."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    with Image.open(source) as small:
        small.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(
            path, "JPEG", quality=90, exif=exif.tobytes()
        )
    return path


def real_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for row in shared_rows("val", count):
        target = folder / Path(row["image"]).name
        target.write_bytes((SHARED / row["image"]).read_bytes())
        paths.append(target)
    return paths


def everything(batches) -> tuple[dict[int, np.ndarray], dict[int, str], dict[int, tuple[int, int]]]:  # noqa: ANN001
    pixels, failures, sizes = {}, {}, {}
    for batch in batches:
        for row, position in enumerate(batch.indices):
            assert position not in pixels, "a photo came back twice"
            pixels[position] = batch.pixels[row].numpy()
            sizes[position] = (batch.photos[row].width, batch.photos[row].height)
        for position, reason in batch.failures:
            assert position not in failures
            failures[position] = reason
    return pixels, failures, sizes


def test_worker_processes_give_what_one_process_gives_in_order(tmp_path: Path) -> None:
    paths = real_photos(tmp_path, 10)
    (tmp_path / "broken.jpg").write_bytes(corrupt_jpeg())
    paths.insert(4, tmp_path / "broken.jpg")
    alone = everything(iterate_photo_batches(paths, TRANSFORM, batch_size=3, workers=0))
    pooled = everything(iterate_photo_batches(paths, TRANSFORM, batch_size=3, workers=2))
    assert sorted(pooled[0]) == [p for p in range(len(paths)) if p != 4]
    assert pooled[1] == alone[1] == {4: "not a recognised image format"}
    for position, array in alone[0].items():
        np.testing.assert_array_equal(array, pooled[0][position])
    assert pooled[2] == alone[2]


def test_a_file_gone_between_listing_and_decoding_is_a_failure_with_its_reason(tmp_path: Path) -> None:
    paths = real_photos(tmp_path, 4)
    paths[1].unlink()
    pixels, failures, _ = everything(iterate_photo_batches(paths, TRANSFORM, batch_size=2, workers=2))
    assert sorted(pixels) == [0, 2, 3]
    assert "file not found" in failures[1]


def test_large_jpegs_decode_at_reduced_scale_with_full_size_and_orientation_kept(tmp_path: Path) -> None:
    source = SHARED / shared_rows("val", 1)[0]["image"]
    path = camera_jpeg(tmp_path / "camera.jpg", source, (2400, 1800), orientation=6)
    drafted = decode_photo(path, min_side=224)
    full = decode_photo(path)
    assert (drafted.width, drafted.height) == (1800, 2400) == (full.width, full.height)
    assert drafted.image.size[0] < 1800 and min(drafted.image.size) >= 224
    assert drafted.image.size[1] > drafted.image.size[0]  # still upright
    (pixels,), _, (size,) = (
        list(d.values()) for d in everything(iterate_photo_batches([path], TRANSFORM, draft=True))
    )
    assert size == (1800, 2400)
    reference = TRANSFORM(full.image).numpy()
    assert pixels.shape == reference.shape == (3, 224, 224)
    # the model sees nearly the same picture: mean difference under 2% of the value range
    assert np.abs(pixels - reference).mean() < 0.04


def test_small_photos_are_never_decoded_below_the_model_size(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 120, 200)).save(buffer, "JPEG")
    path = tmp_path / "small.jpg"
    path.write_bytes(buffer.getvalue())
    assert decode_photo(path, min_side=224).image.size == (300, 300)


def test_a_crashing_decoder_loses_one_file_and_nothing_else(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    paths = real_photos(tmp_path, 9)
    crash = tmp_path / "crashme.jpg"
    crash.write_bytes(paths[0].read_bytes())
    paths.insert(5, crash)
    monkeypatch.setenv(CRASH_ON_ENV, "crashme")
    pixels, failures, _ = everything(iterate_photo_batches(paths, TRANSFORM, batch_size=4, workers=2))
    assert sorted(pixels) == [p for p in range(len(paths)) if p != 5]
    assert list(failures) == [5] and "crashed" in failures[5]


@pytest.mark.parametrize("workers", [0, 2])
def test_no_photos_gives_no_batches(workers: int) -> None:
    assert list(iterate_photo_batches([], TRANSFORM, workers=workers)) == []


def test_a_process_limited_to_one_core_decodes_and_infers_on_one() -> None:
    """A container or taskset cpuset smaller than the machine: one decoding worker and one ONNX thread,
    not one per core of the host."""
    import subprocess
    import sys

    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})\n"
        "from models.loading import default_workers\n"
        "from models.onnx_runtime import session_options\n"
        "print(default_workers(), session_options().intra_op_num_threads)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA"])
def test_the_transform_normalises_each_channel_as_the_config_says(mode: str) -> None:
    """(pixel / 255 − mean) / std per channel, in float32, contiguous (3, H, W): what the checkpoint was
    trained on and what the workers send, exactly."""
    photo = Image.open(SHARED / shared_rows("val", 1)[0]["image"]).convert(mode)
    config = PreprocessConfig(image_size=64, mean=(0.48, 0.46, 0.41), std=(0.27, 0.26, 0.28))
    pixels = config(photo)
    resized = photo.resize((64, 64), Image.Resampling.BICUBIC).convert("RGB")
    rgb = np.asarray(resized, dtype=np.float32).transpose(2, 0, 1) / np.float32(255.0)
    mean = np.asarray(config.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(config.std, dtype=np.float32).reshape(3, 1, 1)
    expected = (rgb - mean) / std
    assert pixels.shape == (3, 64, 64) and pixels.dtype == torch.float32 and pixels.is_contiguous()
    assert np.array_equal(pixels.numpy(), expected)
