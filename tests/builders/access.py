"""Two indexed collections behind API keys: the setting for tests of auth and scopes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.core.config import AuthSettings, Settings
from app.services.keys import KeyService
from app.storage.db import make_engine, session_factory
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.indexing import photo_ids_by_path, run_index


@dataclass
class TwoCollections:
    settings: Settings
    family_ids: list[int]
    work_ids: list[int]
    tokens: dict[str, str]  # key name → token: family, work, all, admin


def key_service(settings: Settings) -> KeyService:
    return KeyService(session_factory(make_engine(settings.db_url)), settings.auth.cache_seconds)


def two_collections(settings: Settings, encoder: Encoder, base: Path) -> TwoCollections:
    """family: 4 captioned photos, work: 4 others; auth on; a key for each, one for all, an admin's."""
    settings = settings.model_copy(update={"auth": AuthSettings(required=True, cache_seconds=0.0)})
    ids: dict[str, list[int]] = {}
    for skip, name in ((0, "family"), (4, "work")):
        folder = base / name
        photos.copy_shared_photos(folder, "val", 4, skip=skip)
        run_index(settings, encoder, folder, captions=folder / "captions.jsonl", collection=name)
        ids[name] = sorted(
            i for path, i in photo_ids_by_path(settings).items() if path.startswith(str(folder))
        )
    keys = key_service(settings)
    tokens = {
        "family": keys.create("family", collections=["family"]),
        "work": keys.create("work", collections=["work"]),
        "all": keys.create("all"),
        "admin": keys.create("admin", admin=True),
    }
    return TwoCollections(settings, ids["family"], ids["work"], tokens)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
