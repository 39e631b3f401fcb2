"""GET /v1/collections: the collections an API key sees, on SQLite and PostgreSQL, auth on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.builders.access import bearer, two_collections
from tests.builders.caption_banks import tiny_encoder


def test_each_key_lists_the_collections_it_sees(settings: Settings, tmp_path: Path) -> None:
    encoder = tiny_encoder(tmp_path / "model", texts=[])
    setup = two_collections(settings, encoder, tmp_path)
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        seen = {
            name: client.get("/v1/collections", headers=bearer(token)) for name, token in setup.tokens.items()
        }
        anonymous = client.get("/v1/collections")
    assert anonymous.status_code == 401 and "API key is required" in anonymous.json()["detail"]
    assert all(r.status_code == 200 for r in seen.values())
    names = {key: [c["name"] for c in r.json()["collections"]] for key, r in seen.items()}
    assert names == {
        "family": ["family"],
        "work": ["work"],
        "all": ["family", "work"],
        "admin": ["family", "work"],
    }
    family = seen["family"].json()["collections"][0]
    assert family["photos"] == len(setup.family_ids) == 4
    assert family["folders"] == ["family"]  # an ordinary key sees folder names, not server paths
    admin = {c["name"]: c for c in seen["admin"].json()["collections"]}
    assert admin["work"]["folders"] == [str(tmp_path / "work")] and admin["work"]["photos"] == 4
    indexed = datetime.fromisoformat(admin["family"]["last_indexed_at"])
    assert timedelta(0) <= datetime.now(UTC) - indexed < timedelta(minutes=30)  # with its zone: UTC
    assert admin["family"]["id"] == family["id"]


def test_a_server_with_nothing_indexed_lists_no_collections(
    sqlite_settings: Settings, tmp_path: Path
) -> None:
    with TestClient(
        create_app(sqlite_settings, encoder=tiny_encoder(tmp_path / "model", texts=[]))
    ) as client:
        empty = client.get("/v1/collections")
        assert empty.status_code == 200 and empty.json() == {"collections": []}
        listed = client.app.openapi()["paths"]["/v1/collections"]["get"]
    assert "ErrorResponse" in str(listed["responses"]["401"]) and listed["tags"] == ["collections"]
