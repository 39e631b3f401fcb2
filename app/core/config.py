"""All settings, read from the environment (PHOTOSEARCH_ prefix, nested groups with __)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseModel):
    max_upload_bytes: int = 20 * 1024 * 1024
    max_query_chars: int = 1000
    max_k: int = 1000
    default_k: int = 20
    thumbnail_px: int = 256


class IndexerSettings(BaseModel):
    batch_size: int | None = None  # None: the model chooses (32 on CPU, more on a GPU)
    workers: int = 1
    max_image_pixels: int = 100_000_000
    flat_max_vectors: int = 50_000  # above: HNSW
    hnsw_max_vectors: int = 1_000_000  # above: IVF-PQ with exact re-ranking


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTOSEARCH_", env_nested_delimiter="__")

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/photosearch.db"
    )
    model: str = "joint-default"
    checkpoint: Path | None = None
    device: str = "auto"
    collection: str = "default"
    api: ApiSettings = ApiSettings()
    indexer: IndexerSettings = IndexerSettings()

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'photosearch.db').resolve()}"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "indexes"


@lru_cache
def get_settings() -> Settings:
    return Settings()
