"""Photo metadata, original files and thumbnails."""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from app.storage import repository as repo
from app.storage.tables import Photo
from models.errors import NotFoundError
from models.images import ImageDecodeError, decode_photo


def get_photo(sessions: sessionmaker[Session], photo_id: int) -> Photo:
    with sessions() as session:
        photo = repo.get_photo(session, photo_id=photo_id)
    if photo is None:
        raise NotFoundError(f"no photo with id {photo_id}")
    return photo


def original_file(sessions: sessionmaker[Session], photo_id: int) -> Path:
    photo = get_photo(sessions, photo_id)
    path = Path(photo.path)
    if not path.is_file():
        raise NotFoundError(f"photo {photo_id}'s file is no longer at {path}; re-run the indexer")
    return path


def thumbnail(sessions: sessionmaker[Session], photo_id: int, cache_dir: Path, size: int) -> Path:
    """A JPEG no larger than size×size, upright, cached by content hash."""
    photo = get_photo(sessions, photo_id)
    target = cache_dir / f"{photo.id}-{photo.sha256[:16]}-{size}.jpg"
    if target.is_file():
        return target
    source = original_file(sessions, photo_id)
    try:
        image = decode_photo(source).image
    except ImageDecodeError as exc:
        raise NotFoundError(f"photo {photo_id} cannot be decoded for a thumbnail: {exc}") from exc
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    image.save(tmp, "JPEG", quality=85)
    os.replace(tmp, target)
    return target
