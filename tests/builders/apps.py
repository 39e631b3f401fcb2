"""The real app over a real indexed photo folder, on the database a test asks for."""

from __future__ import annotations

from pathlib import Path

from app.core.config import ApiSettings, Settings
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.databases import reset_postgres
from tests.builders.indexing import run_index


def database_url(kind: str, base: Path, postgres_url: str | None) -> str:
    """A fresh SQLite file under base, or the (emptied) PostgreSQL test database."""
    if kind == "sqlite":
        return f"sqlite:///{base / 'photosearch.db'}"
    assert postgres_url is not None
    reset_postgres(postgres_url)
    return postgres_url


def indexed_settings(
    base: Path, encoder: Encoder, url: str, count: int = 12, api: ApiSettings | None = None
) -> Settings:
    """`count` real captioned photos in base/photos, indexed with their captions."""
    folder = base / "photos"
    photos.copy_shared_photos(folder, "val", count)
    settings = Settings(data_dir=base / "data", database_url=url, device="cpu", api=api or ApiSettings())
    run_index(settings, encoder, folder, captions=folder / "captions.jsonl")
    return settings
