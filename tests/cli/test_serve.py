"""`photosearch serve` as a user starts it: one log line a request, uvicorn's start and stop lines,
nothing from other libraries."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.builders.console import free_port, photosearch_script, script_env

NOISE = (
    "Loading faiss",
    "Context impl",
    "Will assume",
    "Loading weights",
    "ModuleNotFoundError",
    "Traceback",
)


def wait_for_line(log: Path, text: str, server: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        assert server.poll() is None, f"the server stopped:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{log.read_text()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_serve_logs_one_line_a_request(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "stderr.log"
    command = [photosearch_script(), "serve", "--port", str(port)]
    with open(log, "wb") as stderr:
        server = subprocess.Popen(command, env=script_env(tmp_path / "data"), stderr=stderr)
    try:
        wait_for_line(log, "Application startup complete", server)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/health").status_code == 200
        assert httpx.get(f"{base}/v1/photos/987654").status_code == 404
        wait_for_line(log, "GET /v1/photos/", server, timeout=10)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    requests = [line for line in lines if "GET /" in line]
    assert len(requests) == 2, lines  # uvicorn's own access line would make it four
    assert "/health" in requests[0] and "200" in requests[0] and "404" in requests[1]
    for start_or_stop in ("Uvicorn running on", "Application startup complete", "Finished server process"):
        assert any(start_or_stop in line for line in lines), start_or_stop
    assert not [line for line in lines if any(noise in line for noise in NOISE)], lines
