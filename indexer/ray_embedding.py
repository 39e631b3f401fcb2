"""Decode and embed pending photos on a Ray cluster (`photosearch index PATH --ray [ADDRESS]`).

Ray Data streams the photo paths through two stages: Ray tasks (one CPU each, anywhere in the cluster)
decode and preprocess batches with the indexer's own decoder (models/loading.py), and an actor pool,
each actor one model replica (one per GPU on a GPU cluster, else one per `cpus_per_replica` CPUs),
embeds them and returns vectors with the photos' metadata. The vectors stream back to
this process, which writes SQL and FAISS exactly as a single-machine run does (indexer/embedding.py):
every batch is committed with its rows, so the crash-safety guarantees are the same. A replica that
dies is restarted by Ray and its batch retried; a batch stored twice is stored idempotently (one vector
row per photo and model), so nothing is lost or duplicated.

Workers need the project installed and the photo folder at the same path (a shared mount), as they
read the files themselves.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from indexer.embedding import EmbeddedBatch, PhotoBatchPlan
from models.encoder import Encoder
from models.images import DecodedPhoto
from models.inference import ServingOptions, load_encoder
from models.loading import DecodeJob, LoadedBatch, load_one, needed_side

log = logging.getLogger(__name__)
_NO_PIXELS = Image.new("RGB", (1, 1))

# Tests only: a replica dies (once: the marker file is created first) when it meets a photo of this name.
DIE_ON_ENV = "PHOTOSEARCH_TEST_RAY_DIE_ON"
DIE_MARKER_ENV = "PHOTOSEARCH_TEST_RAY_DIE_MARKER"


@dataclass(frozen=True)
class ModelSpec:
    """How a replica loads the same model the driver indexes with (its key is checked)."""

    model: str
    checkpoint: str | None
    checkpoint_dirs: tuple[str, ...]
    options: ServingOptions
    key: str

    def load(self, device: str) -> Encoder:
        dirs = [Path(d) for d in self.checkpoint_dirs]
        encoder = load_encoder(self.model, self.checkpoint, device, dirs, self.options)
        if encoder.key != self.key:
            raise RuntimeError(f"a Ray replica loaded {encoder.key}, not the driver's {self.key}")
        return encoder


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray instance
    replicas: int | None = None  # None: one per GPU, else cluster CPUs // cpus_per_replica
    cpus_per_replica: int = 2
    local_cpus: int | None = None  # CPUs of a local instance (None: all)


def decode_batch(batch: dict[str, np.ndarray], job: DecodeJob) -> dict[str, Any]:
    """A Ray Data task (one CPU): decode and preprocess a batch of files with the indexer's decoder."""
    loaded = [load_one(job, Path(str(path))) for path in batch["path"]]
    side = needed_side(job.transform) or 1
    pixels = np.zeros((len(loaded), 3, side, side), dtype=np.float32)
    for row, (array, _) in enumerate(loaded):
        if array is not None:
            pixels[row] = array
    return {
        "position": batch["position"],
        "path": batch["path"],
        "pixels": pixels,
        **_metadata_columns(loaded),
    }


class EmbedReplica:
    """A Ray Data actor: one model replica; decoded pixels in, vectors and metadata out."""

    def __init__(self, spec: ModelSpec, device: str, threads: int) -> None:
        torch.set_num_threads(threads)
        self.encoder = spec.load(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        _die_if_asked(batch["path"])
        good = [row for row, error in enumerate(batch["error"]) if not str(error)]
        vectors = np.zeros((len(batch["position"]), self.encoder.dim), dtype=np.float32)
        if good:
            vectors[good] = self.encoder.encode_image_batch(
                torch.from_numpy(np.asarray(batch["pixels"])[good])
            )
        kept = {name: column for name, column in batch.items() if name not in ("pixels", "path")}
        return {**kept, "vector": vectors}


def _die_if_asked(paths: np.ndarray) -> None:
    name, marker = os.environ.get(DIE_ON_ENV), os.environ.get(DIE_MARKER_ENV)
    if not name or not marker or not any(name in str(p) for p in paths):
        return
    try:
        Path(marker).touch(exist_ok=False)
    except FileExistsError:
        return  # died once already: this retry goes through
    os._exit(1)


def _metadata_columns(loaded: list[tuple[np.ndarray | None, DecodedPhoto | str]]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {
        k: [] for k in ("error", "width", "height", "taken_at", "make", "model", "fmt")
    }
    for pixels, decoded in loaded:
        ok = pixels is not None and isinstance(decoded, DecodedPhoto)
        photo = decoded if isinstance(decoded, DecodedPhoto) else None
        columns["error"].append("" if ok else str(decoded))
        columns["width"].append(photo.width if photo else 0)
        columns["height"].append(photo.height if photo else 0)
        columns["taken_at"].append(photo.taken_at.isoformat() if photo and photo.taken_at else "")
        columns["make"].append(photo.camera_make or "" if photo else "")
        columns["model"].append(photo.camera_model or "" if photo else "")
        columns["fmt"].append(photo.format or "" if photo else "")
    return columns


def _as_loaded(batch: dict[str, np.ndarray]) -> EmbeddedBatch:
    """A streamed batch → what indexer/embedding.py stores: (positions, metadata, failures), vectors."""
    indices, photos, failures, rows = [], [], [], []
    for row, position in enumerate(batch["position"]):
        error = str(batch["error"][row])
        if error:
            failures.append((int(position), error))
            continue
        taken = str(batch["taken_at"][row])
        photos.append(
            DecodedPhoto(
                image=_NO_PIXELS,  # metadata only, as the local decoder returns
                width=int(batch["width"][row]),
                height=int(batch["height"][row]),
                taken_at=datetime.fromisoformat(taken) if taken else None,
                camera_make=str(batch["make"][row]) or None,
                camera_model=str(batch["model"][row]) or None,
                format=str(batch["fmt"][row]) or None,
            )
        )
        indices.append(int(position))
        rows.append(row)
    vectors = np.asarray(batch["vector"], dtype=np.float32)[rows] if rows else None
    return LoadedBatch(indices, torch.zeros(0), photos, failures), vectors


class RayPhotoSource:
    """A photo-batch source for indexer/embedding.py that embeds on a Ray cluster."""

    def __init__(self, spec: ModelSpec, options: RayOptions) -> None:
        self.spec, self.options = spec, options

    def __call__(self, paths: list[Path], plan: PhotoBatchPlan, encoder: Encoder) -> Iterator[EmbeddedBatch]:
        """Batches in the order the cluster finishes them, each with its photos' positions."""
        import ray

        if not ray.is_initialized():
            ray.init(
                address=self.options.address,
                num_cpus=None if self.options.address else self.options.local_cpus,
                log_to_driver=False,
                include_dashboard=False,
            )
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        spare = max(1, cpus - 1)  # decoding tasks always keep at least one CPU, or they never run
        per_replica = 1 if gpus else min(self.options.cpus_per_replica, spare)
        replicas = self.options.replicas or (gpus if gpus else max(1, spare // per_replica))
        log.info(
            "embedding on Ray: %d replicas (%s each)", replicas, "1 GPU" if gpus else f"{per_replica} CPUs"
        )
        transform = encoder.preprocess
        job = DecodeJob(
            transform, plan.max_image_pixels, needed_side(transform) if plan.reduced_decode else None
        )
        items = [{"position": i, "path": str(p)} for i, p in enumerate(paths)]
        dataset = (
            ray.data.from_items(items)
            .map_batches(lambda batch: decode_batch(batch, job), batch_size=plan.batch_size, num_cpus=1)
            .map_batches(
                EmbedReplica,
                fn_constructor_kwargs={
                    "spec": self.spec,
                    "device": "cuda" if gpus else "cpu",
                    "threads": per_replica,
                },
                batch_size=plan.batch_size,
                concurrency=replicas,
                num_gpus=1 if gpus else 0,
                num_cpus=per_replica,
                # Ray Data restarts a dead replica and retries its batch (max_restarts and max_task_retries
                # default to -1 for actor pools); tests/indexer/test_ray_index.py kills one to check it
            )
        )
        for batch in dataset.iter_batches(batch_size=plan.batch_size, batch_format="numpy"):
            yield _as_loaded(batch)
