"""The compose services' exact command lines, run outside a container against the real PostgreSQL:
the indexer, a key, two API replicas over one database and data folder that answer alike and both
serve a new index run without a restart."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.builders import photos
from tests.builders.compose import service_command, wait_for_text
from tests.builders.console import free_port, photosearch_script, run_photosearch, script_env
from tests.builders.databases import reset_postgres


def service_env(postgres_url: str, data_dir: Path, photos_dir: Path) -> dict[str, str]:
    """The services' environment as compose gives it, with the container-only places (the database
    host, /data) pointed at this machine's."""
    env = script_env(data_dir, auth__required="true")
    env.update(
        POSTGRES_PASSWORD="unused-here",
        PHOTOS_DIR=str(photos_dir),
        PHOTOSEARCH_COLLECTION="team",
        PHOTOSEARCH_DATABASE_URL=postgres_url,
    )
    return env


def run_service(service: str, env: dict[str, str], photos_dir: Path) -> subprocess.CompletedProcess[str]:
    command = [str(photos_dir) if part == "/photos" else part for part in service_command(service, env)]
    assert command[0] == "photosearch"
    return run_photosearch(command[1:], env, timeout=400)


def ids_found(port: int, token: str) -> list[int]:
    answer = httpx.post(
        f"http://127.0.0.1:{port}/v1/search/text",
        json={"query": "a dog running", "k": 50},
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return [hit["photo"]["id"] for hit in answer.json()["hits"]]


@pytest.mark.slow
def test_compose_commands_and_two_replicas_over_one_database(postgres_url: str, tmp_path: Path) -> None:
    reset_postgres(postgres_url)
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 4)
    env = service_env(postgres_url, tmp_path / "data", folder)
    indexed = run_service("indexer", env, folder)
    assert indexed.returncode == 0, indexed.stderr
    created = run_photosearch(["keys", "create", "team", "--collections", "team"], env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    api = service_command("api", env)
    assert api[:4] == ["photosearch", "serve", "--host", "0.0.0.0"] and api[-2] == "--port"
    ports, servers, logs = [free_port(), free_port()], [], []
    try:
        for number, port in enumerate(ports):
            command = [photosearch_script(), *api[1:-1], str(port)]  # the compose port, made free here
            logs.append(tmp_path / f"replica{number}.log")
            with open(logs[-1], "wb") as stderr:
                servers.append(subprocess.Popen(command, env=env, stderr=stderr, stdout=stderr))
        for server, log in zip(servers, logs, strict=True):
            wait_for_text(log, "Application startup complete", server)
        first = [ids_found(port, token) for port in ports]
        assert first[0] == first[1] and len(first[0]) == 4
        photos.copy_shared_photos(folder, "val", 8)  # four more photos, then the indexer again
        assert run_service("indexer", env, folder).returncode == 0
        after = [ids_found(port, token) for port in ports]
        assert after[0] == after[1] and len(after[0]) == 8 and set(first[0]) < set(after[0])
    finally:
        for server in servers:
            server.send_signal(signal.SIGINT)
        for server in servers:
            server.wait(timeout=30)
