"""docker-compose.yml read as compose would: its services, with ${...} values filled in from an env."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def compose_file() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    return loaded


def interpolate(value: str, env: dict[str, str]) -> str:
    """${NAME}, ${NAME:-default} and ${NAME:?error} as compose reads them (an unset required one fails)."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if env.get(name):
            return env[name]
        assert kind != "?", f"compose would stop: {name} is not set ({rest})"
        return rest or ""

    return VARIABLE.sub(one, value)


def service_command(service: str, env: dict[str, str]) -> list[str]:
    command: list[str] = compose_file()["services"][service]["command"]
    return [interpolate(part, env) for part in command]


def wait_for_text(log: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the process stopped:\n{log.read_text(errors='replace')}"
        assert time.monotonic() < deadline, f"no {text!r} within {timeout} s:\n{log.read_text()}"
        time.sleep(0.3)
