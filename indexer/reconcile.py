"""Bring SQL rows in line with what is on disk under the scanned folder, before any embedding.

unchanged (size + mtime equal) → untouched; touched but same hash → new stat only;
changed content → re-embedded; new path with a vanished file's hash → a rename, vector kept;
gone → row, vectors and captions removed. Only rows inside the scanned folder can be gone: the
collection's photos in its other folders are never touched, and nothing is removed under a folder
we could not read.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.storage.repository import path_is_under, photos_by_path, photos_with_hashes
from app.storage.tables import Photo, PhotoEmbedding
from indexer.scan import ScannedFile, ScanResult, sha256_file

log = logging.getLogger(__name__)


@dataclass
class ReconcileStats:
    new: int = 0
    changed: int = 0
    touched: int = 0
    unchanged: int = 0
    renamed: int = 0
    deleted: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def reconcile(session: Session, *, collection_id: int, scan: ScanResult, scanned_root: str) -> ReconcileStats:
    stats = ReconcileStats()
    existing = photos_by_path(session, collection_id=collection_id, under=scanned_root)
    seen = {f.path for f in scan.files}
    vanished: dict[str, list[Photo]] = defaultdict(list)  # sha256 → rows whose file is gone
    for path, old in existing.items():
        if path not in seen and not scan.is_under_unreadable(path):
            vanished[old.sha256].append(old)

    arrivals: list[tuple[ScannedFile, str]] = []
    for file in scan.files:
        row = existing.get(file.path)
        if row is None:
            sha = _hash(file, stats)
            if sha is not None:
                arrivals.append((file, sha))
        else:
            _update_known(session, row, file, stats)
    elsewhere = _gone_from_other_folders(session, collection_id, scanned_root, arrivals, vanished)
    for file, sha in arrivals:
        _place_arrival(session, collection_id, file, sha, vanished.get(sha) or elsewhere.get(sha), stats)
    for rows in vanished.values():
        for row in rows:
            log.info("removed %s (file is gone)", row.path)
            session.delete(row)
            stats.deleted += 1
    session.flush()
    return stats


def _hash(file: ScannedFile, stats: ReconcileStats) -> str | None:
    try:
        return sha256_file(file.path)
    except OSError as exc:
        reason = f"cannot read file: {exc.strerror or exc}"
        stats.unreadable.append((file.path, reason))
        log.warning("skipped %s: %s", file.path, reason)
        return None


def _update_known(session: Session, row: Photo, file: ScannedFile, stats: ReconcileStats) -> None:
    """A path we already have: untouched, touched (same bytes) or changed (re-embedded)."""
    if row.folder != file.folder:
        row.folder = file.folder  # named from a parent folder indexed since
    if row.size == file.size and row.mtime_ns == file.mtime_ns:
        stats.unchanged += 1
        return
    # a file that became unreadable keeps its last good state
    sha = _hash(file, stats) or row.sha256
    if sha == row.sha256:
        stats.touched += 1
    else:
        stats.changed += 1
        row.sha256, row.status, row.error = sha, "pending", None
        session.execute(delete(PhotoEmbedding).where(PhotoEmbedding.photo_id == row.id))
    row.size, row.mtime_ns = file.size, file.mtime_ns


def _gone_from_other_folders(
    session: Session,
    collection_id: int,
    scanned_root: str,
    arrivals: list[tuple[ScannedFile, str]],
    vanished: dict[str, list[Photo]],
) -> dict[str, list[Photo]]:
    """Rows outside the scanned folder whose file is gone from disk and whose bytes just arrived
    here: a photo moved in from another folder of the collection keeps its row. They are never
    removed by this run (their folder is not being scanned)."""
    unmatched = {sha for _, sha in arrivals if not vanished.get(sha)}
    found: dict[str, list[Photo]] = defaultdict(list)
    for row in photos_with_hashes(session, collection_id=collection_id, hashes=unmatched):
        if not path_is_under(row.path, scanned_root) and not os.path.lexists(row.path):
            found[row.sha256].append(row)
    return found


def _place_arrival(
    session: Session,
    collection_id: int,
    file: ScannedFile,
    sha: str,
    same_bytes_gone: list[Photo] | None,
    stats: ReconcileStats,
) -> None:
    """A path we have no row for: a renamed or moved photo (same bytes as a vanished one) or a new one."""
    if same_bytes_gone:
        moved = same_bytes_gone.pop()
        log.info("renamed %s → %s", moved.path, file.path)
        moved.path, moved.folder = file.path, file.folder
        moved.size, moved.mtime_ns = file.size, file.mtime_ns
        stats.renamed += 1
        return
    session.add(
        Photo(
            collection_id=collection_id,
            path=file.path,
            folder=file.folder,
            size=file.size,
            mtime_ns=file.mtime_ns,
            sha256=sha,
            status="pending",
        )
    )
    stats.new += 1
