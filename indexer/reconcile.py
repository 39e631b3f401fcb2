"""Bring SQL rows in line with what is on disk, before any embedding.

unchanged (size + mtime equal) → untouched; touched but same hash → new stat only;
changed content → re-embedded; new path with a vanished file's hash → a rename, vector kept;
gone → row, vectors and captions removed (but never under a folder we could not read).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.storage.repository import photos_by_path
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


def _hash(file: ScannedFile, stats: ReconcileStats) -> str | None:
    try:
        return sha256_file(file.path)
    except OSError as exc:
        reason = f"cannot read file: {exc.strerror or exc}"
        stats.unreadable.append((file.path, reason))
        log.warning("skipped %s: %s", file.path, reason)
        return None


def reconcile(session: Session, *, collection_id: int, scan: ScanResult) -> ReconcileStats:
    stats = ReconcileStats()
    existing = photos_by_path(session, collection_id=collection_id)
    seen = {f.path for f in scan.files}
    vanished: dict[str, list[Photo]] = defaultdict(list)
    for path, old in existing.items():
        if path not in seen and not scan.is_under_unreadable(path):
            vanished[old.sha256].append(old)

    for file in scan.files:
        row = existing.get(file.path)
        if row is not None and row.size == file.size and row.mtime_ns == file.mtime_ns:
            stats.unchanged += 1
            continue
        sha = _hash(file, stats)
        if sha is None:
            if row is None:
                continue  # nothing to keep for a file we never read
            sha = row.sha256  # keep the last good state of a file that became unreadable
        if row is not None:
            if sha == row.sha256:
                stats.touched += 1
            else:
                stats.changed += 1
                row.sha256, row.status, row.error = sha, "pending", None
                session.execute(delete(PhotoEmbedding).where(PhotoEmbedding.photo_id == row.id))
            row.size, row.mtime_ns = file.size, file.mtime_ns
            continue
        if vanished.get(sha):
            moved = vanished[sha].pop()
            log.info("renamed %s → %s", moved.path, file.path)
            moved.path, moved.folder = file.path, file.folder
            moved.size, moved.mtime_ns = file.size, file.mtime_ns
            stats.renamed += 1
            continue
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

    for rows in vanished.values():
        for row in rows:
            log.info("removed %s (file is gone)", row.path)
            session.delete(row)
            stats.deleted += 1
    session.flush()
    return stats
