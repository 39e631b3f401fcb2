"""What operators see: request ids, JSON log lines, /metrics figures, the CORS allow-list."""

from __future__ import annotations

import json
import logging.config
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import ApiSettings, Settings
from app.main import create_app
from cli.logs import logging_config
from models.encoder import Encoder
from tests.builders.access import bearer, two_collections


def test_request_ids_json_logs_and_metrics(
    sqlite_settings: Settings,
    encoder: Encoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup = two_collections(sqlite_settings, encoder, tmp_path)
    admin, family = bearer(setup.tokens["admin"]), bearer(setup.tokens["family"])
    monkeypatch.setenv("PHOTOSEARCH_LOG_FORMAT", "json")
    logging.config.dictConfig(logging_config(False))
    try:
        with TestClient(create_app(setup.settings, encoder=encoder)) as client:
            capsys.readouterr()
            made = client.get(f"/v1/photos/{setup.family_ids[0]}", headers=family)
            kept = client.get("/health", headers={"X-Request-ID": "proxy-42"})
            forged = client.get("/health", headers={"X-Request-ID": "x" * 100})
            assert client.get("/docs", headers=admin).status_code == 200
            metrics = client.get("/metrics", headers=admin).text
            lines = [
                json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
            ]
    finally:
        monkeypatch.delenv("PHOTOSEARCH_LOG_FORMAT")
        logging.config.dictConfig(logging_config(False))
    assert len(made.headers["x-request-id"]) == 32 and kept.headers["x-request-id"] == "proxy-42"
    assert forged.headers["x-request-id"] != "x" * 100
    access = [line for line in lines if line["logger"] == "photosearch.access"]
    first = access[0]
    assert first["route"] == "/v1/photos/{photo_id}" and first["status"] == 200 and first["key"] == "family"
    assert first["request_id"] == made.headers["x-request-id"]
    assert setup.tokens["family"] not in json.dumps(lines)
    assert 'route="/docs"' in metrics
    assert 'photosearch_photos{collection="family"} 4.0' in metrics
    assert 'photosearch_index_vectors{collection="work",kind="photos"} 4.0' in metrics
    assert 'photosearch_index_age_seconds{collection="family",kind="photos"}' in metrics
    assert "photosearch_model_load_seconds" in metrics


def test_cors_is_closed_unless_an_origin_is_listed(sqlite_settings: Settings, encoder: Encoder) -> None:
    preflight = {"Origin": "https://intranet.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(sqlite_settings, encoder=encoder)) as client:
        closed = client.options("/v1/search/text", headers=preflight)
    assert "access-control-allow-origin" not in closed.headers
    listed = sqlite_settings.model_copy(
        update={"api": ApiSettings(cors_allow_origins=["https://intranet.example"])}
    )
    with TestClient(create_app(listed, encoder=encoder)) as client:
        opened = client.options("/v1/search/text", headers=preflight)
        other = client.options("/v1/search/text", headers={**preflight, "Origin": "https://evil.example"})
    assert opened.status_code == 200
    assert opened.headers["access-control-allow-origin"] == "https://intranet.example"
    assert "access-control-allow-origin" not in other.headers
