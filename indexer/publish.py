"""Publishing a collection's vectors as the index files the server reads, at a cost that grows with
what changed since the last build, not with the collection.

A build is a base FAISS file (Flat, HNSW or IVF-PQ by size) plus delta segments: small files of the
vectors added or changed since the base, with their ids, and the ids removed since
(app/storage/layered_index.py). Database triggers log every vector written or deleted
(vector_changes, migration 0006) and each build records the newest change it covers, so a run reads
only the ids changed since, their current vectors, and the base's id list (8 bytes a vector, for
telling removals of this collection's ids from other collections'), then writes one delta file.
Neither the base nor the collection's vectors are read. Deltas are merged, by building a new base from
SQL, when they outgrow a fraction of the base or a count of files, and when the collection's size
crosses a line between index types, so a type changes once, at the crossing. This was chosen over
FAISS add_with_ids/remove_ids on a copy of the base: HNSW cannot remove, and a copy of a large base is
itself a read and write of the whole index; merges amortise to a few vectors rebuilt per change.

Every file is written atomically and recorded in index_builds / index_segments only once complete, in
the run's transaction: a killed run leaves the previous build served and unreferenced files that the
next build sweeps (sweep_leftovers); the next run reads the same changes again from the last recorded
watermark, so nothing is lost or served twice. A write that fails (a full disk) leaves the previous
build in service and ends the run with IndexWriteError.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from app.core.config import IndexerSettings
from app.storage import repository as repo
from app.storage.layered_index import Delta
from app.storage.repository.index_builds import SegmentFile, recorded_index_files, segment_files
from app.storage.repository.vector_changes import change_watermark, changed_ids, lock_index, prune_changes
from app.storage.repository.vectors import served_vectors_for_ids
from app.storage.tables import IndexBuild
from app.storage.vector_index import plan_index
from indexer import kill_points
from indexer.index_files import (
    INDEX_SUFFIXES,
    files_of,
    index_folder_for,
    safe_name,
    served_ids,
    write_base,
    write_segment,
)
from models.encoder import Encoder
from models.errors import PhotoSearchError

log = logging.getLogger(__name__)

__all__ = ["KINDS", "IndexWriteError", "index_folder_for", "publish", "safe_name", "sweep_leftovers"]

KINDS = ("photos", "captions")
UNRECORDED_GRACE_S = 600.0  # a concurrent run records its file right after writing it
_TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)-\d+$")  # app/storage/vector_index.py write_bytes_atomic

# Deltas are merged into a new base when they hold more than this fraction of the base's vectors
# (and at least DELTA_MIN_VECTORS: small collections keep cheap deltas) or number MAX_SEGMENTS files.
DELTA_FRACTION = 0.1
DELTA_MIN_VECTORS = 1_000
MAX_SEGMENTS = 16


class IndexWriteError(PhotoSearchError, OSError):
    """An index file could not be written (a full disk): the previous build stays in service."""


@dataclass(frozen=True)
class _Index:
    """One served index: (collection, model, kind), its folder and the size limits of index types."""

    session: Session
    collection: str
    collection_id: int
    encoder: Encoder
    kind: str
    folder: Path
    limits: tuple[int, int]  # flat_max_vectors, hnsw_max_vectors


def publish(
    session: Session,
    *,
    collection: str,
    collection_id: int,
    encoder: Encoder,
    kind: str,
    index_dir: Path,
    settings: IndexerSettings,
) -> tuple[str, int] | None:
    """(index type, vectors) served for `kind` after bringing its build up to date with SQL."""
    target = _Index(
        session,
        collection,
        collection_id,
        encoder,
        kind,
        index_folder_for(index_dir, collection, encoder.key),
        (settings.flat_max_vectors, settings.hnsw_max_vectors),
    )
    lock_index(session, collection_id=collection_id, model_key=encoder.key, kind=kind)
    upto = change_watermark(session)
    builds = repo.latest_index_builds(
        session, model_key=encoder.key, kind=kind, collection_ids=[collection_id]
    )
    parent = builds[0] if builds else None
    try:
        served = _extend(target, parent, upto) if _extendable(parent) else _rebuild(target, upto, parent)
    except OSError as exc:
        raise IndexWriteError(
            f"could not write the {kind} index of collection {collection!r} in {target.folder}: "
            f"{exc.strerror or exc}. The index built before this run is still served and the photos "
            "embedded so far are kept: make room and run `photosearch index` again"
        ) from exc
    prune_changes(session, model_key=encoder.key, kind=kind)
    return served


def _extendable(parent: IndexBuild | None) -> bool:
    return parent is not None and parent.watermark is not None and Path(parent.path).is_file()


def _extend(target: _Index, parent: IndexBuild | None, upto: int) -> tuple[str, int] | None:
    """Write the changes since `parent` as one delta, or merge when deltas have grown too big."""
    assert parent is not None and parent.watermark is not None
    upto = max(upto, parent.watermark)
    model_key, dim = target.encoder.key, target.encoder.dim
    changed = changed_ids(
        target.session, model_key=model_key, kind=target.kind, after=parent.watermark, upto=upto
    )
    if not changed:
        return parent.index_type, parent.vectors
    served = served_ids(parent)
    if served is None:
        return _rebuild(target, upto, parent)
    ids, vectors = served_vectors_for_ids(
        target.session,
        kind=target.kind,
        collection_id=target.collection_id,
        ids=changed,
        model_key=model_key,
        dim=dim,
    )
    gone = np.setdiff1d(np.array(changed, np.int64), ids)
    delta = Delta(ids, vectors, gone[np.isin(gone, served)])
    total = parent.vectors - len(delta.removed) + int((~np.isin(ids, served)).sum())
    if _needs_merge(parent, delta, plan_index(total, dim, *target.limits).kind):
        return _rebuild(target, upto, parent, merging=True)
    segments = segment_files(parent)
    if len(delta.ids) or len(delta.removed):
        segments.append(write_segment(target.folder, target.kind, delta))
        kill_points.reached("delta-written")
    _record(
        target,
        parent.index_type,
        Path(parent.path),
        total,
        parent.signature,
        upto,
        parent.base_vectors,
        segments,
    )
    return parent.index_type, total


def _needs_merge(parent: IndexBuild, delta: Delta, kind_by_size: str) -> bool:
    if kind_by_size != parent.index_type:
        return True  # the collection crossed the line between two index types
    volume = sum(s.added + s.removed for s in parent.segments) + len(delta.ids) + len(delta.removed)
    limit = max(DELTA_MIN_VECTORS, DELTA_FRACTION * (parent.base_vectors or parent.vectors))
    return volume > limit or len(parent.segments) + 1 > MAX_SEGMENTS


def _rebuild(
    target: _Index, upto: int, parent: IndexBuild | None, merging: bool = False
) -> tuple[str, int] | None:
    """A new base from every vector in SQL (the first build, a merge, a type change), no segments."""
    fetch = repo.photo_vectors if target.kind == "photos" else repo.caption_vectors
    ids, vectors = fetch(
        target.session,
        collection_id=target.collection_id,
        model_key=target.encoder.key,
        dim=target.encoder.dim,
    )
    if not len(ids) and parent is None:
        return None
    index_type, path = write_base(target.folder, target.kind, ids, vectors, target.limits)
    kill_points.reached("faiss-written")
    if merging:
        kill_points.reached("merge-written")
    signature = hashlib.sha256(ids.tobytes() + vectors.tobytes()).hexdigest()
    _record(target, index_type, path, len(ids), signature, upto, len(ids), [])
    return index_type, len(ids)


def _record(
    target: _Index,
    index_type: str,
    path: Path,
    vectors: int,
    signature: str,
    watermark: int,
    base_vectors: int | None,
    segments: list[SegmentFile],
) -> None:
    """Record the new build (served from the next request on) and delete files no build names now."""
    repo.record_index_build(
        target.session,
        collection_id=target.collection_id,
        model_key=target.encoder.key,
        kind=target.kind,
        index_type=index_type,
        path=path,
        vectors=vectors,
        dim=target.encoder.dim,
        signature=signature,
        watermark=watermark,
        base_vectors=base_vectors,
        segments=segments,
    )
    stale = repo.prune_index_builds(
        target.session, collection_id=target.collection_id, model_key=target.encoder.key, kind=target.kind
    )
    for name in stale:
        for file in files_of(name):
            file.unlink(missing_ok=True)


def sweep_leftovers(session: Session, *, folder: Path, collection_id: int, model_key: str) -> list[Path]:
    """Remove temp files whose writer is gone and old index files no build row records."""
    if not folder.is_dir():
        return []
    recorded = {
        str(file)
        for name in recorded_index_files(session, collection_id=collection_id, model_key=model_key)
        for file in files_of(name)
    }
    removed = []
    for entry in folder.iterdir():
        if _is_leftover(entry, recorded):
            entry.unlink(missing_ok=True)
            log.info("removed %s (left by an interrupted run)", entry)
            removed.append(entry)
    return removed


def _is_leftover(entry: Path, recorded: set[str]) -> bool:
    if not entry.is_file() or entry.is_symlink():
        return False
    temp = _TEMP_NAME.match(entry.name)
    if temp:
        return not _process_alive(int(temp.group(1)))
    if entry.suffix not in INDEX_SUFFIXES or str(entry) in recorded:
        return False
    return time.time() - entry.stat().st_mtime > UNRECORDED_GRACE_S


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
