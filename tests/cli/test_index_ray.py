"""`photosearch index PATH --ray local` through the installed script: a local Ray instance decodes
and embeds, this process stores; the photos are then searchable like any others."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.builders import photos
from tests.builders.console import nonempty_lines, run_photosearch, script_env

pytestmark = pytest.mark.slow


def test_index_on_a_local_ray_instance_then_query(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 3)
    env = script_env(tmp_path / "data")
    indexed = run_photosearch(["index", str(folder), "--ray", "local", "--ray-cpus", "1"], env)
    assert indexed.returncode == 0, indexed.stderr
    assert "3 embedded now" in indexed.stdout or "embedded now" in indexed.stdout
    found = run_photosearch(["query", "a dog", "-k", "3", "--json"], env)
    assert found.returncode == 0, found.stderr
    assert found.stdout.count(str(folder)) == 3


def test_ray_replicas_need_a_cpu(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    photos.copy_shared_photos(folder, "val", 1)
    result = run_photosearch(
        ["index", str(folder), "--ray", "local", "--ray-cpus", "0"], script_env(tmp_path)
    )
    assert result.returncode == 2
    assert nonempty_lines(result.stderr) == ["error: --ray-cpus must be at least 1, not 0"]
