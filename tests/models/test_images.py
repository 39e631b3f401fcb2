"""Decoding: every odd photo is decoded upright in RGB, every bad file fails with a reason."""

from __future__ import annotations

import pytest

from models.images import ImageDecodeError, decode_photo
from tests.builders import photos


@pytest.mark.parametrize(
    ("maker", "reason"),
    [
        (photos.corrupt_jpeg, "not a recognised image format"),
        (photos.truncated_jpeg, "truncated"),
        (lambda: b"these are my holiday notes\n", "not a recognised image format"),
        (lambda: b"", "empty file"),
        (photos.png_bomb, "decompression bomb"),
    ],
    ids=["corrupt", "truncated", "text-as-jpg", "zero-byte", "bomb"],
)
def test_bad_files_fail_with_a_reason(maker, reason: str) -> None:
    with pytest.raises(ImageDecodeError, match=reason):
        decode_photo(maker())


def test_bomb_is_refused_from_its_header_without_decoding() -> None:
    with pytest.raises(ImageDecodeError, match="30000x30000"):
        decode_photo(photos.png_bomb(), max_pixels=50_000_000)


def test_missing_file_is_a_decode_error(tmp_path) -> None:
    with pytest.raises(ImageDecodeError, match="file not found"):
        decode_photo(tmp_path / "nope.jpg")


def test_cmyk_becomes_rgb_with_the_right_colour() -> None:
    decoded = decode_photo(photos.cmyk_jpeg())
    r, g, b = decoded.image.getpixel((10, 10))
    assert decoded.image.mode == "RGB" and r > 240 and g < 15 and b < 15


def test_16_bit_png_keeps_its_tones() -> None:
    decoded = decode_photo(photos.png16())
    row = [decoded.image.getpixel((x, 0))[0] for x in range(decoded.width)]
    assert row[0] == 0 and row[-1] == 255
    assert 100 < row[len(row) // 2] < 155  # mid-grey, not clipped to white
    assert row == sorted(row)


def test_transparency_is_composited_over_white() -> None:
    decoded = decode_photo(photos.rgba_png())
    assert decoded.image.getpixel((5, 5)) == (255, 255, 255)
    assert decoded.image.getpixel((60, 5)) == (0, 0, 255)


def test_exif_rotation_is_applied() -> None:
    decoded = decode_photo(photos.exif_rotated_jpeg())
    assert (decoded.width, decoded.height) == (60, 120)
    top, bottom = decoded.image.getpixel((30, 10)), decoded.image.getpixel((30, 110))
    assert top[0] > 200 and top[2] < 50  # red half is on top once upright
    assert bottom[2] > 200 and bottom[0] < 50


def test_exif_date_and_camera_are_read() -> None:
    decoded = decode_photo(photos.exif_camera_jpeg())
    assert decoded.taken_at is not None and decoded.taken_at.isoformat() == "2021-07-14T09:30:00"
    assert (decoded.camera_make, decoded.camera_model) == ("Acme", "Shooter 3000")


def test_animated_gif_gives_its_first_frame() -> None:
    decoded = decode_photo(photos.animated_gif())
    assert decoded.image.getpixel((20, 20)) == (0, 200, 0)


def test_heic_is_decoded() -> None:
    decoded = decode_photo(photos.heic_bytes())
    r, g, b = decoded.image.getpixel((32, 32))
    assert decoded.format in ("HEIF", "HEIC") and r > 220 and g > 180 and b < 40
