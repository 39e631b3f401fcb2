"""API keys with auth on: who gets in, and what each key sees (real app, real indexes, both databases)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders.access import bearer, key_service, two_collections

UNKNOWN_ID = 987_654_321


def test_a_key_sees_only_its_collections_everywhere(
    settings: Settings, minilm_encoder: Encoder, tmp_path: Path
) -> None:
    """Every route, with a real model whose caption bank (the model's captions, every key's) is real too."""
    encoder = minilm_encoder
    setup = two_collections(settings, encoder, tmp_path)
    family, other = bearer(setup.tokens["family"]), setup.work_ids[0]
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        hits = client.post("/v1/search/text", json={"query": "a photo", "k": 50}, headers=family).json()[
            "hits"
        ]
        assert sorted(h["photo"]["id"] for h in hits) == setup.family_ids
        everyone = client.post(
            "/v1/search/text", json={"query": "a photo", "k": 50}, headers=bearer(setup.tokens["all"])
        )
        assert len(everyone.json()["hits"]) == 8
        # another collection by name: told exactly as a collection that does not exist
        asked = client.post(
            "/v1/search/text", json={"query": "a dog", "collections": ["work"]}, headers=family
        )
        missing = client.post(
            "/v1/search/text", json={"query": "a dog", "collections": ["nope"]}, headers=family
        )
        assert asked.status_code == missing.status_code == 404
        assert asked.json()["detail"].replace("work", "nope") == missing.json()["detail"]
        for path in ("/v1/photos/{id}", "/v1/photos/{id}/file", "/v1/photos/{id}/thumbnail"):
            theirs = client.get(path.format(id=other), headers=family)
            unknown = client.get(path.format(id=UNKNOWN_ID), headers=family)
            assert theirs.status_code == unknown.status_code == 404, path
            assert theirs.json()["detail"] == f"no photo with id {other}", path
            assert unknown.json()["detail"] == f"no photo with id {UNKNOWN_ID}", path
            assert client.get(path.format(id=setup.family_ids[0]), headers=family).status_code == 200, path
        by_id = [
            ("/v1/search/image", {"photo_id": other}),
            ("/v1/annotate", {"photo_id": other}),
            ("/v1/classify", {"photo_id": other, "labels": ["dog", "cat"]}),
        ]
        for path, body in by_id:
            theirs = client.post(path, json=body, headers=family)
            assert theirs.status_code == 404 and theirs.json() == {"detail": f"no photo with id {other}"}, (
                path
            )
            assert client.post(path, json=body, headers=bearer(setup.tokens["work"])).status_code == 200, path
        captions = client.post("/v1/search/captions", json={"query": "a dog", "k": 50}, headers=family).json()
        assert {c["photo_id"] for c in captions["captions"]} <= set(setup.family_ids)
        assert captions["captions"]
        notes = client.post(
            "/v1/annotate", json={"photo_id": setup.family_ids[0], "k": 50}, headers=family
        ).json()
        ours = [c for c in notes["captions"] if c["source"] == "collection"]
        assert ours and {c["photo_id"] for c in ours} <= set(setup.family_ids)
        assert any(c["source"] == "model" for c in notes["captions"])  # the model's bank: every key's


def test_ordinary_keys_see_relative_paths_and_no_hashes(
    sqlite_settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    setup = two_collections(sqlite_settings, encoder, tmp_path)
    photo_id = setup.family_ids[0]
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        ordinary = client.get(f"/v1/photos/{photo_id}", headers=bearer(setup.tokens["family"])).json()
        admin = client.get(f"/v1/photos/{photo_id}", headers=bearer(setup.tokens["admin"])).json()
        hit = client.post(
            "/v1/search/text", json={"query": "a photo"}, headers=bearer(setup.tokens["all"])
        ).json()["hits"][0]["photo"]
    assert admin["path"].startswith(str(tmp_path / "family")) and len(admin["sha256"]) == 64
    assert ordinary["sha256"] is None and ordinary["path"] == Path(admin["path"]).name
    assert hit["sha256"] is None and not hit["path"].startswith("/") and str(tmp_path) not in hit["path"]


def test_requests_without_a_valid_key_are_refused(
    sqlite_settings: Settings, encoder: Encoder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    setup = two_collections(sqlite_settings, encoder, tmp_path)
    good = setup.tokens["family"]
    refused = [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {good} extra"},
        {"Authorization": "Bearer psk_not-a-key"},
        {"X-API-Key": ""},
        {"X-API-Key": good + "x"},
        {"Authorization": "Bearer " + "x" * 10_000},
    ]
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        for headers in refused:
            answer = client.post("/v1/search/text", json={"query": "a dog"}, headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert set(answer.json()) == {"detail"}
        assert client.get("/v1/photos/1", headers={"X-API-Key": good}).status_code == 200
        assert client.get("/docs").status_code == 401
        assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=bearer(good)).status_code == 403
        assert client.get("/metrics", headers=bearer(setup.tokens["admin"])).status_code == 200
        with caplog.at_level(logging.INFO, logger="photosearch.access"):
            assert client.get("/v1/photos/1", headers=bearer(good)).status_code == 200
        key_service(setup.settings).revoke("family")
        assert client.get("/v1/photos/1", headers=bearer(good)).status_code == 401
        assert client.get("/v1/photos/1", headers=bearer(setup.tokens["work"])).status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "photosearch.access"]
    assert any("key=family" in line for line in lines), lines
    assert not any(good in r.getMessage() for r in caplog.records)


def test_a_thousand_wrong_keys_get_steady_401s_and_good_keys_still_work(
    sqlite_settings: Settings, encoder: Encoder, tmp_path: Path
) -> None:
    setup = two_collections(sqlite_settings, encoder, tmp_path)
    with TestClient(create_app(setup.settings, encoder=encoder)) as client:
        statuses = {
            client.get(f"/v1/photos/{setup.family_ids[0]}", headers=bearer(f"psk_wrong{i}")).status_code
            for i in range(1000)
        }
        assert statuses <= {401, 429}
        good = client.get(f"/v1/photos/{setup.family_ids[0]}", headers=bearer(setup.tokens["family"]))
        assert good.status_code == 200
