"""A relative data folder (the default `data`) is made absolute once, so that what the indexer writes
under it is found again by a server or a query started from another working directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.storage.tables import IndexBuild
from cli.context import open_service
from models.encoder import Encoder
from tests.builders import photos
from tests.builders.indexing import run_index, table


def test_index_from_one_directory_then_search_from_another(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str, encoder: Encoder
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    second.mkdir()
    photos.copy_shared_photos(first / "photos", "val", 3)
    monkeypatch.chdir(first)
    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", "data")
    at_first = Settings(database_url=db_url, device="cpu")
    assert at_first.data_dir == first / "data"
    run_index(at_first, encoder, Path("photos"))
    builds = table(at_first, IndexBuild)
    assert builds and all(Path(b.path).is_absolute() and Path(b.path).is_file() for b in builds)

    monkeypatch.chdir(second)  # same database and data folder, another working directory
    monkeypatch.setenv("PHOTOSEARCH_DATA_DIR", str(first / "data"))
    at_second = Settings(database_url=db_url, device="cpu")
    with TestClient(create_app(at_second, encoder=encoder)) as client:
        assert client.get("/ready").status_code == 200
        hits = client.post("/v1/search/text", json={"query": "a dog", "k": 3}).json()["hits"]
        assert len(hits) == 3
    monkeypatch.setattr(
        "cli.context.open_encoder", lambda _settings, *_more, **_kw: encoder
    )  # the same model, loaded once
    assert len(open_service(at_second).search_text("a dog", k=2)) == 2  # as `photosearch query` does
