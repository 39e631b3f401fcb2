"""What every route promises: limits from settings, errors in one shape, one access-log line a request."""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import ApiSettings, Settings
from app.main import create_app
from models.encoder import Encoder
from tests.builders.apps import indexed_settings

ROUTES = Path(__file__).resolve().parents[2] / "app" / "api" / "routes"


@pytest.fixture(scope="module")
def base_settings(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Settings:
    base = tmp_path_factory.mktemp("contract")
    return indexed_settings(base, encoder, f"sqlite:///{base / 'photosearch.db'}")


def with_env(monkeypatch: pytest.MonkeyPatch, base: Settings, **env: str) -> Settings:
    """Settings read from the environment as the server reads them, over the indexed data."""
    for name, value in env.items():
        monkeypatch.setenv(f"PHOTOSEARCH_API__{name.upper()}", value)
    return Settings(data_dir=base.data_dir, database_url=base.database_url, device="cpu")


def test_k_default_and_maximum_come_from_settings(
    monkeypatch: pytest.MonkeyPatch, base_settings: Settings, encoder: Encoder
) -> None:
    settings = with_env(monkeypatch, base_settings, default_k="3", max_k="5")
    with TestClient(create_app(settings, encoder=encoder)) as client:
        default = client.post("/v1/search/text", json={"query": "a dog"}).json()
        assert default["k"] == 3 and len(default["hits"]) == 3
        assert client.post("/v1/search/image", json={"photo_id": 1}).json()["k"] == 3
        annotated = client.post("/v1/annotate", json={"photo_id": 1, "sources": ["collection"]})
        assert len(annotated.json()["captions"]) == 3
        assert len(client.post("/v1/search/text", json={"query": "a dog", "k": 5}).json()["hits"]) == 5
        over = client.post("/v1/search/text", json={"query": "a dog", "k": 6})
        assert over.status_code == 422 and over.json() == {"detail": "k must be between 1 and 5; got 6"}
        documented = client.get("/openapi.json").json()["components"]["schemas"]["TextSearch"]["properties"]
        assert documented["k"]["default"] == 3
        assert {"type": "integer", "minimum": 1, "maximum": 5}.items() <= documented["k"]["anyOf"][0].items()
    wide = with_env(monkeypatch, base_settings, max_k="5000")
    with TestClient(create_app(wide, encoder=encoder)) as client:
        accepted = client.post("/v1/search/text", json={"query": "a dog", "k": 4000})
        assert accepted.status_code == 200 and len(accepted.json()["hits"]) == 12  # all there are
        assert client.post("/v1/search/text", json={"query": "a dog", "k": 5001}).status_code == 422


def test_routes_raise_no_http_errors_of_their_own() -> None:
    """Every 4xx comes from a domain error mapped in app/api/errors.py."""
    for module in ROUTES.glob("*.py"):
        names = {
            node.id if isinstance(node, ast.Name) else node.attr
            for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.Name | ast.Attribute)
        }
        assert not names & {"HTTPException", "JSONResponse"}, module.name


def test_every_error_answer_has_a_detail(base_settings: Settings, encoder: Encoder) -> None:
    with TestClient(create_app(base_settings, encoder=encoder), raise_server_exceptions=False) as client:
        answers = {
            "no route": client.get("/v1/nothing-here"),
            "wrong method": client.get("/v1/search/text"),
            "schema": client.post("/v1/search/text", json={"query": 3}),
            "domain": client.get("/v1/photos/999999"),
            "domain 422": client.post("/v1/search/text", json={"query": "  "}),
        }
        client.app.state.services.photos.get = None  # a bug in a service: calling None
        answers["server"] = client.get("/v1/photos/1")
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "no route": 404,
        "wrong method": 405,
        "schema": 422,
        "domain": 404,
        "domain 422": 422,
        "server": 500,
    }
    assert all(r.headers["content-type"] == "application/json" for r in answers.values())
    assert all(r.json()["detail"] for r in answers.values())
    assert answers["server"].json() == {"detail": "internal error; see the server log"}


def test_one_access_log_line_per_request(
    caplog: pytest.LogCaptureFixture, base_settings: Settings, encoder: Encoder
) -> None:
    small = base_settings.model_copy(update={"api": ApiSettings(max_body_bytes=1000)})
    with TestClient(create_app(small, encoder=encoder)) as client:
        caplog.set_level(logging.INFO, logger="photosearch.access")
        caplog.clear()
        client.post("/v1/search/text", json={"query": "a dog", "k": 2})
        client.get("/v1/photos/999999")
        client.get("/v1/no%0Aroute")
        client.post("/v1/search/text", json={"query": "x" * 2000})
    lines = [r.getMessage() for r in caplog.records if r.name == "photosearch.access"]
    assert len(lines) == 4, lines
    expected = [
        ("POST", "/v1/search/text", "200"),
        ("GET", "/v1/photos/{photo_id}", "404"),  # the route template, not the id
        ("GET", "/v1/no%0Aroute", "404"),  # unmatched: the path as sent, so no line can be forged
        ("POST", "/v1/search/text", "413"),  # refused by the body limit before any route ran
    ]
    for line, (method, route, status) in zip(lines, expected, strict=True):
        words = line.split(" ")
        assert words[:3] == [method, route, status] and words[4] == "ms", line
        assert 0 <= float(words[3]) < 60_000
