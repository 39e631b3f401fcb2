"""`photosearch index`: the whole incremental run over one folder.

Every batch of vectors is committed with its rows, so a killed run resumes where it stopped;
the FAISS files are rebuilt from SQL at the end and swapped in atomically.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.storage import repository as repo
from app.storage.db import transaction
from app.storage.tables import CaptionEmbedding, Photo, PhotoEmbedding
from app.storage.vector_index import build_index, plan_index, write_index_atomic
from indexer.captions import CaptionStats, attach_captions
from indexer.labels import LabelOptions, apply_labels
from indexer.reconcile import ReconcileStats, reconcile
from indexer.scan import scan_folder
from models.encoder import Encoder
from models.errors import InvalidInputError
from models.loading import iterate_photo_batches

log = logging.getLogger(__name__)


class IndexerError(InvalidInputError):
    pass


@dataclass
class IndexOptions:
    batch_size: int = 32
    workers: int = 1
    max_image_pixels: int = 100_000_000
    flat_max_vectors: int = 50_000
    hnsw_max_vectors: int = 1_000_000
    show_progress: bool = True
    labels: LabelOptions | None = None  # zero-shot tags stored per photo (indexer/labels.py)


@dataclass
class IndexReport:
    collection: str
    scanned: int = 0
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reconcile: ReconcileStats = field(default_factory=ReconcileStats)
    captions: CaptionStats | None = None
    caption_vectors: int = 0
    photo_index: tuple[str, int] | None = None  # (type, vectors)
    caption_index: tuple[str, int] | None = None
    seconds: float = 0.0


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def index_folder(
    *,
    root: Path,
    collection: str,
    encoder: Encoder,
    sessions: sessionmaker[Session],
    index_dir: Path,
    captions_file: Path | None = None,
    options: IndexOptions | None = None,
) -> IndexReport:
    opts = options or IndexOptions()
    started = time.perf_counter()
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise IndexerError(f"not a folder: {root}")
    report = IndexReport(collection)
    scan = scan_folder(root)
    report.scanned = len(scan.files)
    report.skipped.extend(scan.unreadable_files)
    with transaction(sessions) as session:
        collection_id = repo.get_or_create_collection(session, name=collection, root=root).id
        report.reconcile = reconcile(session, collection_id=collection_id, scan=scan)
    report.skipped.extend(report.reconcile.unreadable)

    _embed_photos(sessions, collection_id, encoder, opts, report)
    if opts.labels is not None:
        apply_labels(sessions, collection_id=collection_id, encoder=encoder, options=opts.labels)
    if captions_file is not None:
        with transaction(sessions) as session:
            report.captions = attach_captions(
                session, collection_id=collection_id, root=root, captions_file=captions_file
            )
    report.caption_vectors = _embed_captions(sessions, collection_id, encoder, opts)
    with transaction(sessions) as session:
        report.photo_index = _build(session, collection, collection_id, encoder, "photos", index_dir, opts)
        report.caption_index = _build(
            session, collection, collection_id, encoder, "captions", index_dir, opts
        )
    report.seconds = time.perf_counter() - started
    return report


def _embed_photos(
    sessions: sessionmaker[Session],
    collection_id: int,
    encoder: Encoder,
    opts: IndexOptions,
    report: IndexReport,
) -> None:
    with sessions() as session:
        done = repo.embedded_photo_ids(session, collection_id=collection_id, model_key=encoder.key)
        pending = [
            (row.id, row.path)
            for row in session.scalars(
                select(Photo)
                .where(Photo.collection_id == collection_id, Photo.status != "skipped")
                .order_by(Photo.id)
            )
            if row.id not in done
        ]
    if not pending:
        return
    with _progress(opts.show_progress) as progress:
        task = progress.add_task(f"embedding with {encoder.key}", total=len(pending))
        batches = iterate_photo_batches(
            [Path(path) for _, path in pending],
            encoder.preprocess,
            batch_size=opts.batch_size,
            workers=opts.workers,
            max_pixels=opts.max_image_pixels,
        )
        for batch in batches:
            vectors = encoder.encode_image_batch(batch.pixels) if batch.indices else None
            offsets = hub_offsets(encoder, vectors, "photos")
            with transaction(sessions) as session:
                for row_index, (position, decoded) in enumerate(
                    zip(batch.indices, batch.photos, strict=True)
                ):
                    photo = session.get(Photo, pending[position][0])
                    if photo is None:
                        continue
                    photo.status, photo.error = "ok", None
                    photo.width, photo.height, photo.format = decoded.width, decoded.height, decoded.format
                    photo.taken_at, photo.camera_make = decoded.taken_at, decoded.camera_make
                    photo.camera_model = decoded.camera_model
                    assert vectors is not None
                    session.merge(
                        PhotoEmbedding(
                            photo_id=photo.id,
                            model_key=encoder.key,
                            vector=repo.to_blob(vectors[row_index]),
                            hub_offset=None if offsets is None else float(offsets[row_index]),
                        )
                    )
                for position, reason in batch.failures:
                    photo = session.get(Photo, pending[position][0])
                    if photo is not None:
                        photo.status, photo.error = "skipped", reason
                    report.skipped.append((pending[position][1], reason))
                    log.warning("skipped %s: %s", pending[position][1], reason)
            report.embedded += len(batch.indices)
            progress.advance(task, len(batch.indices) + len(batch.failures))


def _embed_captions(
    sessions: sessionmaker[Session],
    collection_id: int,
    encoder: Encoder,
    opts: IndexOptions,
    chunk: int = 1024,
) -> int:
    with sessions() as session:
        todo = [
            (c.id, c.text)
            for c in repo.captions_without_vectors(
                session, collection_id=collection_id, model_key=encoder.key
            )
        ]
    if not todo:
        return 0
    with _progress(opts.show_progress) as progress:
        task = progress.add_task("embedding captions", total=len(todo))
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            vectors = encoder.encode_texts([text for _, text in part])
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


def hub_offsets(encoder: Encoder, vectors: np.ndarray | None, kind: str) -> np.ndarray | None:
    """Each vector's query-bank offset (models/query_bank.py), stored beside it; None without a bank."""
    bank = encoder.query_bank
    if bank is None or vectors is None:
        return None
    return bank.photo_offsets(vectors) if kind == "photos" else bank.caption_offsets(vectors)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _build(
    session: Session,
    collection: str,
    collection_id: int,
    encoder: Encoder,
    kind: str,
    index_dir: Path,
    opts: IndexOptions,
) -> tuple[str, int] | None:
    fetch = repo.photo_vectors if kind == "photos" else repo.caption_vectors
    ids, vectors = fetch(session, collection_id=collection_id, model_key=encoder.key, dim=encoder.dim)
    builds = repo.latest_index_builds(
        session, model_key=encoder.key, kind=kind, collection_ids=[collection_id]
    )
    if not len(ids) and not builds:
        return None
    signature = hashlib.sha256(ids.tobytes() + vectors.tobytes()).hexdigest()
    if builds and builds[0].signature == signature and Path(builds[0].path).is_file():
        return builds[0].index_type, len(ids)  # nothing changed since the last build
    plan = plan_index(len(ids), encoder.dim, opts.flat_max_vectors, opts.hnsw_max_vectors)
    index = build_index(vectors, ids, plan)
    path = index_dir / _safe(collection) / _safe(encoder.key) / f"{kind}-{time.time_ns()}.faiss"
    write_index_atomic(index, path)
    repo.record_index_build(
        session,
        collection_id=collection_id,
        model_key=encoder.key,
        kind=kind,
        index_type=plan.kind,
        path=path,
        vectors=len(ids),
        dim=encoder.dim,
        signature=signature,
    )
    for stale in repo.prune_index_builds(
        session, collection_id=collection_id, model_key=encoder.key, kind=kind
    ):
        Path(stale).unlink(missing_ok=True)
    return plan.kind, len(ids)
