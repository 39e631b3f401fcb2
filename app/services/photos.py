"""Photo metadata, original files and thumbnails.

A file is served only for a row the indexer embedded (status "ok") whose real path still lies inside
one of its collection's folders and whose size and mtime still match what was indexed: a symlink
to somewhere else, or a file swapped since indexing, is answered exactly like an unknown id."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.filters import checked_photo_id
from app.services.limits import HeavyWorkGate
from app.storage import repository as repo
from app.storage.repository.collections import collection_folders
from app.storage.tables import Photo
from models.errors import NotFoundError
from models.images import ImageDecodeError, decode_photo


def servable_path(photo: Photo, roots: Sequence[str]) -> Path | None:
    """The real path of an indexed photo's file when it may be served, else None."""
    if photo.status != "ok":
        return None
    real = os.path.realpath(photo.path)
    folders = [os.path.realpath(root) for root in roots]
    if not any(os.path.commonpath([real, folder]) == folder for folder in folders):
        return None
    try:
        found = os.stat(real)
    except OSError:
        return None
    if found.st_size != photo.size or found.st_mtime_ns != photo.mtime_ns:
        return None
    return Path(real)


class PhotoService:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session], gate: HeavyWorkGate) -> None:
        self.settings = settings
        self.sessions = sessions
        self.gate = gate

    def get(self, photo_id: int, within: frozenset[int] | None = None) -> Photo:
        """within: the collections the request's key sees (None: all); others answer as unknown ids."""
        with self.sessions() as session:
            photo = repo.get_photo(session, photo_id=checked_photo_id(photo_id))
        if photo is None or (within is not None and photo.collection_id not in within):
            raise NotFoundError(f"no photo with id {photo_id}")
        return photo

    def original_file(self, photo_id: int, within: frozenset[int] | None = None) -> Path:
        return self._servable(photo_id, within)[1]

    def _servable(self, photo_id: int, within: frozenset[int] | None) -> tuple[Photo, Path]:
        photo = self.get(photo_id, within)
        with self.sessions() as session:
            roots = collection_folders(session, collection_id=photo.collection_id)
        path = servable_path(photo, roots)
        if path is None:  # as an unknown id: nothing is told about files on the server
            raise NotFoundError(f"no photo with id {photo_id}")
        return photo, path

    def thumbnail(self, photo_id: int, within: frozenset[int] | None = None) -> Path:
        """A JPEG no larger than api.thumbnail_px on each side, upright, cached by content hash."""
        photo, source = self._servable(photo_id, within)
        size = self.settings.api.thumbnail_px
        cache_dir = self.settings.data_dir / "thumbnails"
        target = cache_dir / f"{photo.id}-{photo.sha256[:16]}-{size}.jpg"
        if target.is_file():
            return target
        with self.gate.slot(release_memory=True):
            try:
                image = decode_photo(source, self.settings.indexer.max_image_pixels, min_side=2 * size).image
            except ImageDecodeError as exc:
                raise NotFoundError(f"photo {photo_id} cannot be decoded for a thumbnail: {exc}") from exc
            image.thumbnail((size, size), Image.Resampling.LANCZOS)
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        image.save(tmp, "JPEG", quality=85)
        os.replace(tmp, target)
        return target
