"""Attach captions from a checked captions file (indexer/inputs.py) to indexed photos.

A relative image path is tried against the captions file's folder, then the collection folder,
then as a unique file name in the collection. Captions are diffed by text (repository
replace_captions): unchanged ones keep their ids and vectors, so re-attaching a file embeds only
what is new.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.storage.repository import photos_by_path, replace_captions
from app.storage.tables import Photo
from indexer.inputs import CaptionsFile

log = logging.getLogger(__name__)


@dataclass
class CaptionStats:
    photos: int = 0  # photos the file gave captions to
    captions: int = 0  # their captions from this file
    added: int = 0  # new or changed captions (to be embedded)
    removed: int = 0  # captions no longer in the file
    unmatched: int = 0  # rows naming photos not in the collection


def attach_captions(
    session: Session, *, collection_id: int, root: Path, captions: CaptionsFile
) -> CaptionStats:
    stats = CaptionStats()
    photos = photos_by_path(session, collection_id=collection_id)
    by_name: dict[str, list[Photo]] = {}
    for photo in photos.values():
        by_name.setdefault(os.path.basename(photo.path), []).append(photo)
    source = str(captions.path)
    for row in captions.rows:
        found = _match(row.image, captions.path.parent, root, photos, by_name)
        if found is None:
            stats.unmatched += 1
            continue
        change = replace_captions(session, photo=found, texts=row.texts, source=source)
        stats.photos += 1
        stats.captions += len(row.texts)
        stats.added += change.added
        stats.removed += change.removed
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
