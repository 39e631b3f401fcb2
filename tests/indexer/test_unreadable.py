"""Unreadable files and folders, as a real unprivileged user sees them.

Root reads everything, so when the tests run as root the indexer runs as `nobody` in a child
process (setpriv) over a world-readable copy of the photos.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders.photos import copy_shared_photos

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="photosearch-unreadable-"))
    os.chmod(base, 0o777)
    yield base
    for path, dirs, _ in os.walk(base):
        for name in dirs:
            os.chmod(os.path.join(path, name), 0o755)
    shutil.rmtree(base, ignore_errors=True)


def _index_as_user(base: Path, root: Path, as_nobody: bool) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PHOTOSEARCH_DATA_DIR": str(base / "data"),
        "PHOTOSEARCH_DEVICE": "cpu",
        "HOME": str(base),
        "PHOTOSEARCH_INDEXER__WORKERS": "0",
        "COLUMNS": "200",
    }
    env.pop("PHOTOSEARCH_DATABASE_URL", None)
    command = [sys.executable, "-m", "cli.main", "index", str(root)]
    if as_nobody and os.geteuid() == 0:
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _rows(base: Path) -> dict[str, tuple[str, str | None]]:
    with sqlite3.connect(base / "data" / "photosearch.db") as conn:
        return {Path(p).name: (s, e) for p, s, e in conn.execute("select path, status, error from photos")}


@pytest.mark.slow
def test_unreadable_file_and_folder(world: Path) -> None:
    root = world / "photos"
    copy_shared_photos(root, "val", 4)
    copy_shared_photos(root / "private", "val", 2, skip=4)
    (world / "data").mkdir(mode=0o777)
    for path, dirs, files in os.walk(world):
        for name in dirs:
            os.chmod(os.path.join(path, name), 0o777)
        for name in files:
            os.chmod(os.path.join(path, name), 0o666)
    first = _index_as_user(world, root, as_nobody=True)
    assert first.returncode == 0, first.stderr + first.stdout
    assert len(_rows(world)) == 6

    new_file = root / "new.jpg"
    shutil.copy(sorted((root / "private").glob("*.jpg"))[0], new_file)
    locked = sorted(root.glob("*.jpg"))[0]
    for path in (locked, new_file, root / "private"):
        os.chmod(path, 0o000)
    os.utime(locked)  # its stat changed, so the indexer must read it again

    second = _index_as_user(world, root, as_nobody=True)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    rows = _rows(world)
    assert "cannot read folder" in output and "private" in output
    assert "new.jpg" in output and "Permission denied" in output
    # nothing lost: the unreadable photo and the unreadable folder's photos keep their rows
    assert len(rows) == 6 and all(status == "ok" for status, _ in rows.values())
    assert "new.jpg" not in rows
