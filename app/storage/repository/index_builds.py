"""The FAISS files written for each (collection, model, kind), newest served."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.storage.tables import IndexBuild, IndexSegment


@dataclass(frozen=True)
class SegmentFile:
    """A delta file as a build lists it."""

    path: str
    added: int
    removed: int


def record_index_build(
    session: Session,
    *,
    collection_id: int,
    model_key: str,
    kind: str,
    index_type: str,
    path: Path,
    vectors: int,
    dim: int,
    signature: str,
    watermark: int | None = None,
    base_vectors: int | None = None,
    segments: Sequence[SegmentFile] = (),
) -> IndexBuild:
    """A new served build: base file `path` plus `segments` (oldest first) holding `vectors` in all."""
    build = IndexBuild(
        collection_id=collection_id,
        model_key=model_key,
        kind=kind,
        index_type=index_type,
        path=str(path),
        vectors=vectors,
        dim=dim,
        signature=signature,
        watermark=watermark,
        base_vectors=vectors if base_vectors is None else base_vectors,
        segments=[
            IndexSegment(position=n, path=s.path, added=s.added, removed=s.removed)
            for n, s in enumerate(segments)
        ],
    )
    session.add(build)
    session.flush()
    return build


def segment_files(build: IndexBuild) -> list[SegmentFile]:
    return [SegmentFile(s.path, s.added, s.removed) for s in build.segments]


def recorded_index_files(session: Session, *, collection_id: int, model_key: str) -> set[str]:
    """Every base and segment file a build of this collection and model still names."""
    bases = select(IndexBuild.path).where(
        IndexBuild.collection_id == collection_id, IndexBuild.model_key == model_key
    )
    segments = (
        select(IndexSegment.path)
        .join(IndexBuild, IndexBuild.id == IndexSegment.build_id)
        .where(IndexBuild.collection_id == collection_id, IndexBuild.model_key == model_key)
    )
    return set(session.scalars(bases)) | set(session.scalars(segments))


def latest_index_builds(
    session: Session, *, model_key: str, kind: str, collection_ids: Sequence[int] | None = None
) -> list[IndexBuild]:
    """The newest build of each collection for this model and kind."""
    newest = (
        select(func.max(IndexBuild.id))
        .where(IndexBuild.model_key == model_key, IndexBuild.kind == kind)
        .group_by(IndexBuild.collection_id)
    )
    query = select(IndexBuild).where(IndexBuild.id.in_(newest))
    if collection_ids is not None:
        query = query.where(IndexBuild.collection_id.in_(collection_ids))
    return list(session.scalars(query.order_by(IndexBuild.collection_id)))


def prune_index_builds(
    session: Session, *, collection_id: int, model_key: str, kind: str, keep: int = 2
) -> list[str]:
    """Drop old build rows beyond the newest `keep`; returns the files no remaining build names
    (builds that follow one another share their base and segment files)."""
    rows = list(
        session.scalars(
            select(IndexBuild)
            .where(
                IndexBuild.collection_id == collection_id,
                IndexBuild.model_key == model_key,
                IndexBuild.kind == kind,
            )
            .order_by(IndexBuild.id.desc())
        )
    )
    stale, kept = rows[keep:], rows[:keep]
    in_use = {row.path for row in kept} | {s.path for row in kept for s in row.segments}
    files = {row.path for row in stale} | {s.path for row in stale for s in row.segments}
    for row in stale:
        session.delete(row)
    return sorted(files - in_use)
