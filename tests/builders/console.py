"""Running the installed `photosearch` console script as a user does, in a subprocess."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

# Variables that change what the command prints; a test states the ones it wants.
_OUTER_SETTINGS = ("PHOTOSEARCH_", "HF_HUB_", "TRANSFORMERS_", "FAISS_")


def photosearch_script() -> str:
    """The console script installed beside this interpreter (the venv's bin/)."""
    found = shutil.which("photosearch", path=str(Path(sys.executable).parent))
    assert found, f"photosearch is not installed next to {sys.executable}: pip install -e . --no-deps"
    return found


def script_env(data_dir: Path, /, **settings: str) -> dict[str, str]:
    """This process's environment without photosearch or Hugging Face settings, plus a data folder,
    the CPU, in-process decoding, a wide terminal and `settings` (values of PHOTOSEARCH_<name>)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_OUTER_SETTINGS)}
    if "PHOTOSEARCH_CACHE_DIR" in os.environ:  # the suite's one cache of the model's caption bank
        env["PHOTOSEARCH_CACHE_DIR"] = os.environ["PHOTOSEARCH_CACHE_DIR"]
    env.update(
        PHOTOSEARCH_DATA_DIR=str(data_dir),
        PHOTOSEARCH_DEVICE="cpu",
        PHOTOSEARCH_INDEXER__WORKERS="0",
        PHOTOSEARCH_AUTH__REQUIRED="false",  # a loopback server, as `make run` starts it
        PHOTOSEARCH_INDEXER__CAPTION_BANK="false",  # as the suite's own index runs (tests/conftest.py)
        COLUMNS="200",
    )
    env.update({f"PHOTOSEARCH_{name.upper()}": value for name, value in settings.items()})
    return env


def run_photosearch(
    args: list[str], env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [photosearch_script(), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def nonempty_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
