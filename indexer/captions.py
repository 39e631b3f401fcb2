"""Attach captions from a JSONL file to indexed photos.

Each line: {"image": "<path>", "captions": ["...", ...]}; a relative path is tried against the
JSONL file's folder, then the collection root, then as a unique file name in the collection.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session

from app.storage.repository import photos_by_path, replace_captions
from app.storage.tables import Photo
from models.errors import InvalidInputError
from models.training.data import clean_caption

log = logging.getLogger(__name__)


@dataclass
class CaptionStats:
    photos: int = 0
    captions: int = 0
    unmatched: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)


class CaptionsFileError(InvalidInputError):
    pass


def attach_captions(session: Session, *, collection_id: int, root: Path, captions_file: Path) -> CaptionStats:
    if not captions_file.is_file():
        raise CaptionsFileError(f"captions file not found: {captions_file}")
    stats = CaptionStats()
    photos = photos_by_path(session, collection_id=collection_id)
    by_name: dict[str, list[Photo]] = {}
    for photo in photos.values():
        by_name.setdefault(os.path.basename(photo.path), []).append(photo)
    source = str(captions_file.resolve())
    with open(captions_file, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                image = str(row["image"])
                texts = [clean_caption(str(t)) for t in row["captions"]]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                stats.bad_lines.append((number, f"not a captions row: {exc}"))
                log.warning("%s:%d skipped: not a captions row (%s)", captions_file, number, exc)
                continue
            texts = [t for t in texts if t]
            found = _match(image, captions_file.parent, root, photos, by_name)
            if found is None:
                stats.unmatched += 1
                continue
            stats.captions += replace_captions(session, photo=found, texts=texts, source=source)
            stats.photos += 1
    if stats.unmatched:
        log.info("%d caption rows name photos that are not in this collection", stats.unmatched)
    session.flush()
    return stats


def _match(
    image: str, base: Path, root: Path, photos: dict[str, Photo], by_name: dict[str, list[Photo]]
) -> Photo | None:
    for candidate in (Path(image), base / image, root / image):
        found = photos.get(str(candidate.resolve()))
        if found is not None:
            return found
    same_name = by_name.get(os.path.basename(image), [])
    return same_name[0] if len(same_name) == 1 else None
