"""Builders for the photo files tests need: real shared photos and every kind of bad input."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "flickr8k"
CC3M = SHARED.parent / "cc3m"  # web photos, one alt-text caption each


def shared_rows(split: str = "val", count: int = 12, skip: int = 0) -> list[dict]:
    rows = []
    with open(SHARED / "captions.jsonl", encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            if row["split"] == split:
                rows.append(row)
    return rows[skip : skip + count]


def copy_shared_photos(folder: Path, split: str = "val", count: int = 12, skip: int = 0) -> Path:
    """Copy `count` real photos into folder and write folder/captions.jsonl for them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = shared_rows(split, count, skip)
    with open(folder / "captions.jsonl", "w", encoding="utf-8") as out:
        for row in rows:
            name = Path(row["image"]).name
            shutil.copy(SHARED / row["image"], folder / name)
            out.write(json.dumps({"image": name, "captions": row["captions"]}) + "\n")
    return folder / "captions.jsonl"


def jpeg_bytes(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def corrupt_jpeg() -> bytes:
    """A JPEG header followed by garbage."""
    data = bytearray(jpeg_bytes((128, 128)))
    rng = np.random.default_rng(0)
    data[200:] = rng.integers(0, 256, len(data) - 200, dtype=np.uint8).tobytes()
    return bytes(data)


def truncated_jpeg() -> bytes:
    data = (SHARED / shared_rows("val", 1)[0]["image"]).read_bytes()
    return data[: len(data) // 2]


def png_bomb(side: int = 30_000) -> bytes:
    """A valid ~100 KB PNG that claims side×side pixels (1-bit grey, all zeros)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (side + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def cmyk_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("CMYK", (80, 60), (0, 255, 255, 0)).save(buffer, "JPEG")  # pure red in CMYK
    return buffer.getvalue()


def png16() -> bytes:
    gradient = np.tile(np.linspace(0, 65535, 96, dtype=np.uint16), (64, 1))
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, "PNG")
    return buffer.getvalue()


def rgba_png() -> bytes:
    image = Image.new("RGBA", (64, 64), (0, 0, 255, 255))
    image.paste((0, 0, 0, 0), (0, 0, 32, 64))  # left half fully transparent
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def exif_rotated_jpeg() -> bytes:
    """Stored 120×60 (red left half, blue right), EXIF orientation 6: shown 60×120, red on top."""
    image = Image.new("RGB", (120, 60), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 60, 60))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes(), quality=95)
    return buffer.getvalue()


def exif_camera_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "Acme"
    exif[0x0110] = "Shooter 3000"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:14 09:30:00"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 10)).save(buffer, "JPEG", exif=exif.tobytes())
    return buffer.getvalue()


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (40, 40), c) for c in ((0, 200, 0), (200, 0, 0), (0, 0, 200))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def heic_bytes() -> bytes:
    import pillow_heif

    buffer = io.BytesIO()
    heif = pillow_heif.from_pillow(Image.new("RGB", (64, 64), (240, 200, 0)))
    heif.save(buffer, quality=90)
    return buffer.getvalue()


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Every file that must be skipped with a reason, by name."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "corrupt.jpg": corrupt_jpeg(),
        "truncated.jpg": truncated_jpeg(),
        "notes.jpg": b"these are my holiday notes, not a photo\n",
        "empty.jpg": b"",
        "bomb.png": png_bomb(),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


def write_odd_but_good_files(folder: Path) -> dict[str, Path]:
    """Files that must be indexed correctly despite an unusual format."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "cmyk.jpg": cmyk_jpeg(),
        "deep.png": png16(),
        "alpha.png": rgba_png(),
        "rotated.jpg": exif_rotated_jpeg(),
        "camera.jpg": exif_camera_jpeg(),
        "animated.gif": animated_gif(),
        "phone.heic": heic_bytes(),
    }
    out = {}
    for name, data in files.items():
        (folder / name).write_bytes(data)
        out[name] = folder / name
    return out


def captioned_subset(folder: Path, train: int, val: int, source: Path = SHARED) -> Path:
    """The first `train` + `val` photos of a shared data set (Flickr8k unless `source` says) copied into
    folder, with their captions.jsonl rows."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    counts, limits = {"train": 0, "val": 0}, {"train": train, "val": val}
    with (
        open(source / "captions.jsonl", encoding="utf-8") as src,
        open(folder / "captions.jsonl", "w", encoding="utf-8") as out,
    ):
        for line in src:
            row = json.loads(line)
            if counts[row["split"]] < limits[row["split"]]:
                counts[row["split"]] += 1
                shutil.copy(source / row["image"], folder / row["image"])
                out.write(line)
    return folder


def nested_photo_folders(root: Path) -> Path:
    """root/top photo + root/a (2 photos) + root/b (2 photos), distinct real photos; returns root."""
    copy_shared_photos(root, "val", 1, skip=0)
    copy_shared_photos(root / "a", "val", 2, skip=1)
    copy_shared_photos(root / "b", "val", 2, skip=3)
    return root
