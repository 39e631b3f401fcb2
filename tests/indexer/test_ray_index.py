"""Indexing on a Ray cluster (a local Ray instance with 2 CPUs): the same rows and vectors as a
single-machine run, and a replica killed mid-run loses nothing and duplicates nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.core.config import Settings
from app.storage import repository as repo
from app.storage.tables import Photo, PhotoEmbedding
from indexer.ray_embedding import DIE_MARKER_ENV, DIE_ON_ENV, ModelSpec, RayOptions, RayPhotoSource
from models.encoder import Encoder
from models.inference import ServingOptions
from tests.builders.indexing import run_index, served_ids, table
from tests.builders.photos import copy_shared_photos, corrupt_jpeg

pytestmark = pytest.mark.slow


VICTIM = "victim-photo.jpg"


@pytest.fixture(scope="module")
def died_marker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ray's workers take their environment from the instance's start: the replica that meets VICTIM
    dies once, recording it in this file."""
    import ray

    marker = tmp_path_factory.mktemp("ray") / "died-once"
    env = {DIE_ON_ENV: VICTIM, DIE_MARKER_ENV: str(marker)}
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False, runtime_env={"env_vars": env})
    yield marker
    ray.shutdown()


def photo_folder(root: Path) -> Path:
    copy_shared_photos(root, "val", 10)
    (root / "broken.jpg").write_bytes(corrupt_jpeg())
    return root


def run(settings: Settings, encoder: Encoder, root: Path, source: RayPhotoSource | None) -> None:
    run_index(settings, encoder, root, batch_size=3, photo_source=source)


def stored(settings: Settings, encoder: Encoder) -> tuple[dict[str, tuple], dict[str, np.ndarray]]:
    photos = {Path(p.path).name: p for p in table(settings, Photo)}
    rows = {name: (p.status, p.error, p.width, p.height, p.format, p.sha256) for name, p in photos.items()}
    by_id = {p.id: name for name, p in photos.items()}
    vectors = {
        by_id[e.photo_id]: repo.from_blobs([e.vector], encoder.dim)[0]
        for e in table(settings, PhotoEmbedding)
        if e.model_key == encoder.key
    }
    return rows, vectors


def ray_source(encoder: Encoder) -> RayPhotoSource:
    # the driver's own choices, as `photosearch index --ray` passes them: the session encoder serves the
    # shipped setting (best), which is not the checkpoint's default preset
    spec = ModelSpec("joint-default", None, (), ServingOptions(runtime="torch", preset="best"), encoder.key)
    return RayPhotoSource(spec, RayOptions(replicas=1, cpus_per_replica=2))


def settings_in(base: Path, db_url: str) -> Settings:
    url = db_url if db_url.startswith("postgresql") else f"sqlite:///{base}/photosearch.db"
    return Settings(data_dir=base, database_url=url)


def test_ray_run_stores_what_a_single_machine_run_stores(
    died_marker: Path, encoder: Encoder, tmp_path: Path
) -> None:
    root = photo_folder(tmp_path / "photos")
    local = settings_in(tmp_path / "local", "sqlite")
    clustered = settings_in(tmp_path / "ray", "sqlite")
    run(local, encoder, root, None)
    run(clustered, encoder, root, ray_source(encoder))
    local_rows, local_vectors = stored(local, encoder)
    ray_rows, ray_vectors = stored(clustered, encoder)
    assert ray_rows == local_rows
    assert ray_rows["broken.jpg"][:2] == ("skipped", "not a recognised image format")
    assert sorted(ray_vectors) == sorted(local_vectors) and len(ray_vectors) == 10
    for name, vector in local_vectors.items():
        np.testing.assert_allclose(ray_vectors[name], vector, atol=1e-4)
    assert len(served_ids(clustered, encoder)) == 10


def test_a_replica_killed_mid_run_loses_nothing(
    died_marker: Path, encoder: Encoder, tmp_path: Path, settings: Settings
) -> None:
    root = photo_folder(tmp_path / "photos")
    copy_shared_photos(tmp_path / "more", "val", 1, skip=10)
    next((tmp_path / "more").glob("*.jpg")).rename(root / VICTIM)
    died_marker.unlink(missing_ok=True)
    run(settings, encoder, root, ray_source(encoder))
    assert died_marker.exists(), "the replica was never killed"
    rows, vectors = stored(settings, encoder)
    assert sum(status == "ok" for status, *_ in rows.values()) == 11
    assert len(vectors) == 11 and VICTIM in vectors
    assert len(table(settings, PhotoEmbedding)) == 11  # one vector a photo: nothing stored twice
    assert len(served_ids(settings, encoder)) == 11
