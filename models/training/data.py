"""Captioned photo sets in the captions.jsonl layout:
`{"image": "images/x.jpg", "captions": [..], "split": "train"|"val"}` per line, paths relative
to the file's folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from models.errors import InvalidInputError


@dataclass(frozen=True)
class CaptionedPhoto:
    path: Path
    captions: tuple[str, ...]
    split: str


class DatasetError(InvalidInputError):
    pass


def clean_caption(text: str) -> str:
    """Flickr captions are space-tokenised with a trailing ' .'; make them read like queries."""
    text = " ".join(text.split())
    if text.endswith(" ."):
        text = text[:-2]
    return text.strip()


def load_captioned_photos(data: Path, split: str | None = None) -> list[CaptionedPhoto]:
    """Read DIR/captions.jsonl (or a .jsonl path); keep one split when given."""
    data = Path(data)
    jsonl = data if data.suffix == ".jsonl" else data / "captions.jsonl"
    if not jsonl.is_file():
        raise DatasetError(f"no captions file at {jsonl} (expected captions.jsonl, one JSON object a line)")
    photos = []
    with open(jsonl, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                captions = tuple(clean_caption(c) for c in row["captions"] if c.strip())
                item = CaptionedPhoto(jsonl.parent / row["image"], captions, row.get("split", "train"))
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise DatasetError(f"{jsonl}:{number}: not a captions row ({exc})") from exc
            if split is None or item.split == split:
                photos.append(item)
    if not photos:
        raise DatasetError(f"{jsonl} has no photos in split {split!r}")
    return photos
