"""A library of real photos with known folders, cameras and dates taken (written as EXIF)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.core.config import Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders.databases import reset_postgres
from tests.builders.indexing import photo_ids_by_path, run_index
from tests.builders.photos import SHARED, shared_rows


@dataclass(frozen=True)
class Shot:
    name: str
    folder: str  # relative to the library's root
    camera: tuple[str, str] | None  # (make, model)
    taken: datetime | None


def shots() -> list[Shot]:
    """12 photos: 4 undated at the top; 4 in trips/ and 4 in trips/alps/, taken 2021-01-05..12 at 10:00;
    3 by an Acme Shooter 3000, 2 by a Bolt Zoom X, the rest with no camera recorded."""
    rows = shared_rows("val", 12)
    cameras = {4: ("Acme", "Shooter 3000"), 5: ("Acme", "Shooter 3000"), 9: ("Acme", "Shooter 3000")}
    cameras |= {6: ("Bolt", "Zoom X"), 10: ("Bolt", "Zoom X")}
    out = []
    for i, row in enumerate(rows):
        folder = "" if i < 4 else "trips" if i < 8 else "trips/alps"
        taken = None if i < 4 else datetime(2021, 1, i + 1, 10, 0, 0)
        out.append(Shot(Path(row["image"]).name, folder, cameras.get(i), taken))
    return out


def write_library(root: Path) -> list[Shot]:
    """The photos of shots() under root, re-encoded with their EXIF camera and date."""
    library = shots()
    rows = {Path(r["image"]).name: r for r in shared_rows("val", 12)}
    for shot in library:
        exif = Image.Exif()
        if shot.camera:
            exif[0x010F], exif[0x0110] = shot.camera
        if shot.taken:
            exif.get_ifd(0x8769)[0x9003] = shot.taken.strftime("%Y:%m:%d %H:%M:%S")
        (root / shot.folder).mkdir(parents=True, exist_ok=True)
        with Image.open(SHARED / rows[shot.name]["image"]) as image:
            image.save(root / shot.folder / shot.name, "JPEG", quality=92, exif=exif.tobytes())
    return library


@contextmanager
def library_app(
    kind: str, base: Path, postgres_url: str | None, encoder: Encoder
) -> Iterator[tuple[TestClient, dict[int, Shot]]]:
    """The real app (auth off) over write_library() indexed on `kind` ("sqlite" or "postgresql");
    photo id → what was written into that photo."""
    shots = write_library(base / "photos")
    if kind == "sqlite":
        url = f"sqlite:///{base / 'photosearch.db'}"
    else:
        assert postgres_url is not None
        url = postgres_url
        reset_postgres(url)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PHOTOSEARCH_AUTH__REQUIRED", "false")
        settings = Settings(data_dir=base / "data", database_url=url, device="cpu")
    run_index(settings, encoder, base / "photos")
    ids = photo_ids_by_path(settings)
    by_id = {ids[str(base / "photos" / s.folder / s.name)]: s for s in shots}
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield client, by_id
