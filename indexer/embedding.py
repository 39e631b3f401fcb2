"""Embedding what is pending: photos without a vector, captions without a vector.

Every batch of vectors is committed with its rows, so a killed run resumes where it stopped and
never embeds a committed photo or caption again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.storage import repository as repo
from app.storage.db import transaction
from app.storage.tables import CaptionEmbedding, Photo, PhotoEmbedding
from indexer import kill_points
from models.encoder import Encoder
from models.images import DecodedPhoto
from models.loading import LoadedBatch, iterate_photo_batches

log = logging.getLogger(__name__)


EmbeddedBatch = tuple[LoadedBatch, "np.ndarray | None"]  # decoded photos' metadata and failures, vectors


class PhotoSource(Protocol):
    """Where pending photos are decoded and embedded: here (local_batches) or on a Ray cluster
    (indexer/ray_embedding.py). Either way the batches are stored here, by embed_photos."""

    def __call__(
        self, paths: list[Path], plan: PhotoBatchPlan, encoder: Encoder
    ) -> Iterator[EmbeddedBatch]: ...


@dataclass
class PhotoBatchPlan:
    batch_size: int
    workers: int
    max_image_pixels: int
    show_progress: bool
    reduced_decode: bool = True
    source: PhotoSource | None = None  # None: local_batches


@dataclass
class EmbedStats:
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


def progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def hub_offsets(encoder: Encoder, vectors: np.ndarray | None, kind: str) -> np.ndarray | None:
    """Each vector's query-bank offset (models/query_bank.py), stored beside it; None without a bank."""
    bank = encoder.query_bank
    if bank is None or vectors is None:
        return None
    return bank.photo_offsets(vectors) if kind == "photos" else bank.caption_offsets(vectors)


def pending_photos(session: Session, *, collection_id: int, model_key: str) -> list[tuple[int, str]]:
    """(id, path) of the collection's photos with no vector for this model, skipped ones left out."""
    done = repo.embedded_photo_ids(session, collection_id=collection_id, model_key=model_key)
    rows = session.execute(
        select(Photo.id, Photo.path)
        .where(Photo.collection_id == collection_id, Photo.status != "skipped")
        .order_by(Photo.id)
    ).tuples()
    return [(photo_id, path) for photo_id, path in rows if photo_id not in done]


def embed_photos(
    sessions: sessionmaker[Session],
    *,
    collection_id: int,
    encoder: Encoder,
    plan: PhotoBatchPlan,
    after_batch: Callable[[], None] = lambda: None,
) -> EmbedStats:
    """Decode, embed and commit pending photos batch by batch; `after_batch` runs after each commit."""
    stats = EmbedStats()
    with sessions() as session:
        pending = pending_photos(session, collection_id=collection_id, model_key=encoder.key)
    if not pending:
        return stats
    with progress_bar(plan.show_progress) as progress:
        task = progress.add_task(f"embedding with {encoder.key}", total=len(pending))
        source = plan.source or local_batches
        for batch, vectors in source([Path(path) for _, path in pending], plan, encoder):
            # embedded before the transaction opens: SQLite's write lock is held only to store
            with transaction(sessions) as session:
                _store_batch(session, encoder, batch, vectors, pending, stats)
            progress.advance(task, len(batch.indices) + len(batch.failures))
            kill_points.reached("batch")
            after_batch()
    return stats


def local_batches(paths: list[Path], plan: PhotoBatchPlan, encoder: Encoder) -> Iterator[EmbeddedBatch]:
    """Decode in this machine's worker processes, embed in this process."""
    batches = iterate_photo_batches(
        paths,
        encoder.preprocess,
        batch_size=plan.batch_size,
        workers=plan.workers,
        max_pixels=plan.max_image_pixels,
        draft=plan.reduced_decode,
    )
    for batch in batches:
        yield batch, encoder.encode_image_batch(batch.pixels) if batch.indices else None  # (batch, dim)


def _store_batch(
    session: Session,
    encoder: Encoder,
    batch: LoadedBatch,
    vectors: np.ndarray | None,
    pending: list[tuple[int, str]],
    stats: EmbedStats,
) -> None:
    if vectors is not None:
        offsets = hub_offsets(encoder, vectors, "photos")
        for row, (position, decoded) in enumerate(zip(batch.indices, batch.photos, strict=True)):
            offset = None if offsets is None else float(offsets[row])
            if _store_photo(session, encoder.key, pending[position][0], decoded, vectors[row], offset):
                stats.embedded += 1
    for position, reason in batch.failures:
        photo = session.get(Photo, pending[position][0])
        if photo is not None:
            photo.status, photo.error = "skipped", reason
        stats.skipped.append((pending[position][1], reason))
        log.warning("skipped %s: %s", pending[position][1], reason)


def _store_photo(
    session: Session,
    model_key: str,
    photo_id: int,
    decoded: DecodedPhoto,
    vector: np.ndarray,
    offset: float | None,
) -> bool:
    photo = session.get(Photo, photo_id)
    if photo is None:
        return False  # removed by a concurrent run since the batch was planned
    if not _unchanged_since_hashed(photo):
        return False
    photo.status, photo.error = "ok", None
    photo.width, photo.height, photo.format = decoded.width, decoded.height, decoded.format
    photo.taken_at, photo.camera_make, photo.camera_model = (
        decoded.taken_at,
        decoded.camera_make,
        decoded.camera_model,
    )
    session.merge(
        PhotoEmbedding(photo_id=photo_id, model_key=model_key, vector=repo.to_blob(vector), hub_offset=offset)
    )
    return True


def _unchanged_since_hashed(photo: Photo) -> bool:
    """The file still has the size and mtime it had when hashed, so the vector just made from its
    bytes belongs with that hash. A file rewritten meanwhile keeps no vector: its stat is cleared, so
    the next run hashes and embeds it again from the same bytes."""
    try:
        now = os.stat(photo.path)
        same = (now.st_size, now.st_mtime_ns) == (photo.size, photo.mtime_ns)
    except OSError:
        same = False
    if not same:
        log.warning("%s changed while it was being indexed: it is embedded again on the next run", photo.path)
        photo.status, photo.size, photo.mtime_ns = "pending", -1, -1
    return same


def embed_captions(
    sessions: sessionmaker[Session],
    *,
    collection_id: int,
    encoder: Encoder,
    show_progress: bool,
    chunk: int = 1024,
) -> int:
    """Embed the collection's captions that have no vector for this model; each chunk is committed."""
    with sessions() as session:
        todo = [
            (c.id, c.text)
            for c in repo.captions_without_vectors(
                session, collection_id=collection_id, model_key=encoder.key
            )
        ]
    if not todo:
        return 0
    with progress_bar(show_progress) as progress:
        task = progress.add_task("embedding captions", total=len(todo))
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            vectors = encoder.encode_texts([text for _, text in part])  # (chunk, dim)
            offsets = hub_offsets(encoder, vectors, "captions")
            with transaction(sessions) as session:
                for row, ((caption_id, _), vector) in enumerate(zip(part, vectors, strict=True)):
                    session.merge(
                        CaptionEmbedding(
                            caption_id=caption_id,
                            model_key=encoder.key,
                            vector=repo.to_blob(vector),
                            hub_offset=None if offsets is None else float(offsets[row]),
                        )
                    )
            progress.advance(task, len(part))
    return len(todo)
