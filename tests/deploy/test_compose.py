"""The container files, checked without Docker: compose's services, health checks, volumes, secrets."""

from __future__ import annotations

import re

from tests.builders.compose import REPO, compose_file, interpolate


def test_compose_has_postgres_the_api_and_an_on_demand_indexer() -> None:
    compose = compose_file()
    services = compose["services"]
    assert set(services) == {"postgres", "api", "indexer"}
    postgres, api, indexer = services["postgres"], services["api"], services["indexer"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
    for service in (api, indexer):
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["env_file"] == ".env" and "data:/data" in service["volumes"]
        assert service["environment"]["PHOTOSEARCH_DATA_DIR"] == "/data"
        assert "@postgres:5432/" in service["environment"]["PHOTOSEARCH_DATABASE_URL"]
    assert "/health" in " ".join(api["healthcheck"]["test"])
    assert api["command"][:2] == ["photosearch", "serve"] and "0.0.0.0" in api["command"]
    assert indexer["profiles"] == ["tools"] and indexer["command"][:3] == ["photosearch", "index", "/photos"]
    assert [v for v in indexer["volumes"] if v.endswith(":/photos:ro")]
    assert set(compose["volumes"]) == {"pgdata", "data"}


def test_secrets_come_from_an_uncommitted_env_file() -> None:
    assert ".env" in (REPO / ".gitignore").read_text().split()
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if re.match(r"^\w+=", line)
    )
    assert {"POSTGRES_PASSWORD", "PHOTOS_DIR"} <= set(example)
    compose = compose_file()
    url = interpolate(compose["services"]["api"]["environment"]["PHOTOSEARCH_DATABASE_URL"], example)
    assert example["POSTGRES_PASSWORD"] in url
    assert "POSTGRES_PASSWORD" not in (REPO / "Dockerfile").read_text()
    assert ".env" in (REPO / ".dockerignore").read_text().split()


def test_dockerfile_is_multi_stage_non_root_offline_with_a_healthcheck() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    assert len([line for line in lines if line.startswith("FROM ")]) >= 2
    users = [line for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    text = "\n".join(lines)
    assert "HF_HUB_OFFLINE=1" in text and "create_encoder('joint-default'" in text
