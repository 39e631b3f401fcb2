"""`photosearch index`: the whole incremental run over one folder of a collection.

Inputs are checked before anything is read (indexer/inputs.py). The folder is reconciled with SQL
(indexer/reconcile.py: only photos inside it can be found gone), pending photos and captions are
embedded batch by batch with every batch committed (a killed run resumes), and the FAISS files are
rebuilt from SQL and swapped in atomically: at the end, and every `publish_every_seconds` during a
long run so that search follows indexing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import IndexerSettings
from app.storage import repository as repo
from app.storage.db import transaction
from indexer.captions import CaptionStats, attach_captions
from indexer.embedding import PhotoBatchPlan, PhotoSource, embed_captions, embed_photos
from indexer.inputs import CaptionsFile, IndexerError, checked_folder
from indexer.labels import LabelOptions, LabelStats, apply_labels
from indexer.publish import KINDS, index_folder_for, publish, sweep_leftovers
from indexer.reconcile import ReconcileStats, reconcile
from indexer.scan import ScanResult, ScanRules, scan_folder
from models.encoder import Encoder
from models.loading import default_workers

log = logging.getLogger(__name__)

__all__ = ["IndexReport", "IndexerError", "index_folder"]


class FolderLooksEmptyError(IndexerError):
    pass


@dataclass
class IndexReport:
    collection: str
    scanned: int = 0
    embedded: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    reconcile: ReconcileStats = field(default_factory=ReconcileStats)
    captions: CaptionStats | None = None
    caption_vectors: int = 0
    labels: LabelStats | None = None
    photo_index: tuple[str, int] | None = None  # (type, vectors)
    caption_index: tuple[str, int] | None = None
    publishes: int = 0  # FAISS builds written during the run, before the final one
    seconds: float = 0.0


@dataclass
class _Target:
    """Where a run's results go: the collection, its served files, the model and the settings."""

    sessions: sessionmaker[Session]
    collection: str
    collection_id: int
    encoder: Encoder
    index_dir: Path
    settings: IndexerSettings
    photo_source: PhotoSource | None = None  # None: decode and embed on this machine


def index_folder(
    *,
    root: Path,
    collection: str,
    encoder: Encoder,
    sessions: sessionmaker[Session],
    index_dir: Path,
    captions: CaptionsFile | None = None,
    labels: LabelOptions | None = None,
    settings: IndexerSettings | None = None,
    show_progress: bool = True,
    allow_empty: bool = False,
    photo_source: PhotoSource | None = None,
) -> IndexReport:
    """Index `root` into `collection`. `allow_empty`: accept that a folder which held photos is now
    empty (without it such a run is refused: an unmounted drive looks the same). photo_source: where
    photos are decoded and embedded (None: here; indexer/ray_embedding.py: on a Ray cluster)."""
    started = time.perf_counter()
    root = checked_folder(root)
    report = IndexReport(collection)
    cfg = settings or IndexerSettings()
    collection_id = _reconcile_folder(sessions, collection, root, cfg, report, allow_empty)
    target = _Target(sessions, collection, collection_id, encoder, index_dir, cfg, photo_source)
    _embed_pending_photos(target, report, show_progress)
    if labels is not None:
        report.labels = apply_labels(
            sessions, collection_id=target.collection_id, encoder=encoder, options=labels
        )
    if captions is not None:
        with transaction(sessions) as session:
            report.captions = attach_captions(
                session, collection_id=target.collection_id, root=root, captions=captions
            )
    report.caption_vectors = embed_captions(
        sessions, collection_id=target.collection_id, encoder=encoder, show_progress=show_progress
    )
    report.photo_index, report.caption_index = _publish_all(target)
    report.seconds = time.perf_counter() - started
    return report


def _reconcile_folder(
    sessions: sessionmaker[Session],
    collection: str,
    root: Path,
    settings: IndexerSettings,
    report: IndexReport,
    allow_empty: bool,
) -> int:
    """Scan `root` and bring the collection's rows under it in line; returns the collection's id."""
    with sessions() as session:
        found = repo.get_collection(session, name=collection)
        folders = repo.collection_folders(session, collection_id=found.id) if found else []
    base = repo.holding_folder(folders, str(root))
    rules = ScanRules(
        include_hidden=settings.include_hidden, follow_symlinks_outside=settings.follow_symlinks_outside
    )
    scan = scan_folder(root, base=Path(base) if base else root, rules=rules)
    report.scanned = len(scan.files)
    report.skipped.extend(scan.unreadable_files)
    with transaction(sessions) as session:
        row = repo.get_or_create_collection(session, name=collection, root=root)
        repo.add_collection_folder(session, collection=row, folder=root)
        if not allow_empty:
            _refuse_vanished_folder(session, row.id, root, scan)
        report.reconcile = reconcile(session, collection_id=row.id, scan=scan, scanned_root=str(root))
    report.skipped.extend(report.reconcile.unreadable)
    return row.id


def _refuse_vanished_folder(session: Session, collection_id: int, root: Path, scan: ScanResult) -> None:
    if scan.files or scan.unreadable_dirs:
        return
    known = repo.photos_by_path(session, collection_id=collection_id, under=str(root))
    if known:
        raise FolderLooksEmptyError(
            f"{root} has no photos now but {len(known)} were indexed from it: if it is on a drive, is "
            "the drive mounted? Nothing was changed; if the photos are really gone, run again with "
            "--allow-empty"
        )


def _embed_pending_photos(target: _Target, report: IndexReport, show_progress: bool) -> None:
    cfg = target.settings
    plan = PhotoBatchPlan(
        batch_size=cfg.batch_size or target.encoder.suggested_batch_size(),
        workers=default_workers() if cfg.workers is None else cfg.workers,
        max_image_pixels=cfg.max_image_pixels,
        show_progress=show_progress,
        reduced_decode=cfg.reduced_decode,
        source=target.photo_source,
    )
    last_publish = time.monotonic()

    def publish_now_and_then() -> None:
        nonlocal last_publish
        if time.monotonic() - last_publish >= cfg.publish_every_seconds:
            _publish_all(target, kinds=("photos",))
            report.publishes += 1
            last_publish = time.monotonic()

    stats = embed_photos(
        target.sessions,
        collection_id=target.collection_id,
        encoder=target.encoder,
        plan=plan,
        after_batch=publish_now_and_then,
    )
    report.embedded = stats.embedded
    report.skipped.extend(stats.skipped)


def _publish_all(
    target: _Target, kinds: tuple[str, ...] = KINDS
) -> tuple[tuple[str, int] | None, tuple[str, int] | None]:
    """Build and swap in the FAISS files of `kinds`; returns (photos, captions) as (type, vectors)."""
    built: dict[str, tuple[str, int] | None] = {}
    with transaction(target.sessions) as session:
        sweep_leftovers(
            session,
            folder=index_folder_for(target.index_dir, target.collection, target.encoder.key),
            collection_id=target.collection_id,
            model_key=target.encoder.key,
        )
        for kind in kinds:
            built[kind] = publish(
                session,
                collection=target.collection,
                collection_id=target.collection_id,
                encoder=target.encoder,
                kind=kind,
                index_dir=target.index_dir,
                settings=target.settings,
            )
    return built.get("photos"), built.get("captions")
