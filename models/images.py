"""Decoding photos safely: every failure becomes an ImageDecodeError that says why.

Handles EXIF rotation, CMYK, 16-bit, alpha, palettes, animated files (first frame), HEIC/HEIF
and decompression bombs. Pure: no SQL, no HTTP.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.errors import InvalidInputError

try:  # HEIC/HEIF support is optional at import time but installed by default.
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF_SUPPORTED = True
except ImportError:  # pragma: no cover - depends on the install
    HEIF_SUPPORTED = False

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
)
DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: far above any camera, far below a bomb.

# We enforce our own limit before decoding; Pillow's own check would only warn below 2x.
Image.MAX_IMAGE_PIXELS = None

_EXIF_IFD = 0x8769
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_DATETIME = 0x0132
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110


class ImageDecodeError(InvalidInputError):
    """The file is not a photo we can use; the message says why."""


@dataclass(frozen=True)
class DecodedPhoto:
    image: Image.Image  # RGB, upright
    width: int  # the full-size photo's, after EXIF rotation (also when decoded at reduced scale)
    height: int
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    format: str | None


def decode_photo(
    source: Path | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None
) -> DecodedPhoto:
    """Open a file path or raw bytes as an upright RGB photo, or raise ImageDecodeError.
    min_side: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, far less memory
    and time) while both sides stay at least this long; width and height stay the file's own (upright)."""
    stream = _open_source(source)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(stream) as opened:
                return _decode_opened(opened, max_pixels, min_side)
    except ImageDecodeError:
        raise
    except FileNotFoundError as exc:
        raise ImageDecodeError(f"file not found: {exc.filename}") from exc
    except PermissionError as exc:
        raise ImageDecodeError(f"permission denied: {exc.filename}") from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError("not a recognised image format") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageDecodeError(f"corrupt or truncated image: {exc}") from exc


def _open_source(source: Path | bytes) -> io.BytesIO | Path:
    """What Image.open reads; an empty file or upload is refused here with a plain reason."""
    if isinstance(source, bytes):
        if not source:
            raise ImageDecodeError("empty file (0 bytes)")
        return io.BytesIO(source)
    try:
        if source.stat().st_size == 0:
            raise ImageDecodeError("empty file (0 bytes)")
    except OSError:
        pass  # reported with its reason when opened
    return source


def _decode_opened(opened: Image.Image, max_pixels: int, min_side: int | None) -> DecodedPhoto:
    width, height = opened.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (possible decompression bomb)"
        )
    if min_side and opened.format == "JPEG":
        opened.draft(None, (min_side, min_side))
    if getattr(opened, "n_frames", 1) > 1:
        opened.seek(0)
    taken_at, make, model = _exif_fields(opened)
    fmt = opened.format
    opened.load()
    decoded_size = opened.size  # reduced when drafted
    rgb = to_rgb(ImageOps.exif_transpose(opened))
    turned = rgb.size != decoded_size  # EXIF said to rotate by 90 degrees
    full_width, full_height = (height, width) if turned else (width, height)
    return DecodedPhoto(rgb, full_width, full_height, taken_at, make, model, fmt)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode → 8-bit RGB; transparency is composited over white."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if mode == "F":
        array = np.asarray(image, dtype=np.float64)
        low, high = float(array.min()), float(array.max())
        scaled = (array - low) / (high - low or 1.0) * 255.0
        return Image.fromarray(scaled.astype(np.uint8), "L").convert("RGB")
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if mode in ("RGBA", "LA", "PA") or image.mode in ("RGBA", "LA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image.copy()
    return image.convert("RGB")


def _exif_fields(image: Image.Image) -> tuple[datetime | None, str | None, str | None]:
    try:
        exif = image.getexif()
    except Exception:  # noqa: BLE001 - broken EXIF must never lose the photo
        return None, None, None
    if not exif:
        return None, None, None
    try:
        sub = exif.get_ifd(_EXIF_IFD)
    except Exception:  # noqa: BLE001
        sub = {}
    raw_date = sub.get(_TAG_DATETIME_ORIGINAL) or exif.get(_TAG_DATETIME)
    return _parse_exif_date(raw_date), _clean(exif.get(_TAG_MAKE)), _clean(exif.get(_TAG_MODEL))


def _parse_exif_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ").strip(), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _clean(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip("\x00 ").strip()
    return text or None
