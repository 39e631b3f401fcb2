"""Near-identical photos collapsed into one search hit.

Two photos are duplicates when they are the same file (equal sha256) or when the cosine of their photo
vectors is at least api.dedup_threshold: byte copies, mirrored copies, re-encoded or resized copies and
burst shots (benchmarks/dedup_threshold.py measures where different photos stop). Grouping is greedy
over the candidates in ranking order: a candidate joins the first earlier group leader it matches, or
leads a group of its own. So a leader's place never depends on candidates ranked after it, and a longer
candidate list only ever adds groups after the existing ones: pages follow on without overlap or gap."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.services.index_cache import RawHit
from app.storage import repository as repo

# Duplicates of a photo rank right beside it, so a few candidates beyond the page find them; the pool
# grows in steps that do not depend on the offset within them, so that neighbouring pages group alike.
DEDUP_POOL = 64  # candidates grouped at least, doubled until it is twice the hits wanted
DEDUP_POOL_GROWTH = 4  # the pool grows by this factor while matches remain and groups are too few
DEDUP_POOL_MAX = 50_000  # and stops growing here (a page deep in a library of copies may stay short)
ROW_BY_ROW_MAX = 256  # pools up to this size compare one candidate at a time
BLOCK = 512  # larger ones: this many candidates against all earlier ones in one matrix product


@dataclass(frozen=True)
class Group:
    """One search hit: the best-ranked photo of a set of duplicates, and the others in ranking order."""

    leader: RawHit
    duplicates: list[RawHit] = field(default_factory=list)


def dedup_pool(wanted: int) -> int:
    """Candidates to group for the first `wanted` hits: DEDUP_POOL doubled until it is 2 × wanted."""
    pool = DEDUP_POOL
    while pool < 2 * wanted:
        pool *= 2
    return pool


def group_positions(vectors: np.ndarray, hashes: Sequence[str | None], threshold: float) -> list[list[int]]:
    """Greedy grouping of candidates given in ranking order. vectors: (n, dim) unit rows (a zero row for
    a candidate without a vector: it matches by hash only); hashes: each file's sha256 or None.
    → groups as positions into the candidates, each led by its first (best-ranked) member."""
    is_leader = np.zeros(len(hashes), dtype=bool)
    leader_by_hash: dict[str, int] = {}  # a file's group: later copies of the same file join it
    groups: dict[int, list[int]] = {}
    for i, alike in enumerate(_alike_earlier(vectors, threshold)):
        matches = np.flatnonzero(alike & is_leader[:i])  # earlier leaders this candidate is like
        found = [int(matches[0])] if len(matches) else []
        sha = hashes[i]
        if sha is not None and sha in leader_by_hash:
            found.append(leader_by_hash[sha])
        leader = min(found) if found else i
        is_leader[i] = not found
        groups.setdefault(leader, []).append(i)
        if sha is not None:
            leader_by_hash.setdefault(sha, leader)
    return list(groups.values())


def _alike_earlier(vectors: np.ndarray, threshold: float) -> Iterator[np.ndarray]:
    """For each candidate i: (i,) bool, which earlier candidates are at least `threshold` alike. A small
    pool row by row (matrix-vector products, which BLAS keeps on one thread: a busy server's cores
    are not contended for a few hundred rows), a large one in blocks of matrix products."""
    n = len(vectors)
    if n <= ROW_BY_ROW_MAX:
        for i in range(n):
            yield vectors[:i] @ vectors[i] >= threshold
        return
    for start in range(0, n, BLOCK):
        stop = min(n, start + BLOCK)
        block = vectors[start:stop] @ vectors[:stop].T >= threshold  # (block, stop)
        for i in range(start, stop):
            yield block[i - start, :i]


class DuplicateGrouping:
    """Candidates grouped with their vectors and hashes read from SQL (a few hundred rows a search)."""

    def __init__(self, sessions: sessionmaker[Session], model_key: str, dim: int, threshold: float) -> None:
        self.sessions = sessions
        self.model_key = model_key
        self.dim = dim
        self.threshold = threshold

    def group(self, ranked: Sequence[RawHit]) -> list[Group]:
        """The candidates (best first) as groups of duplicates, in the order of their leaders."""
        if not ranked:
            return []
        with self.sessions() as session:
            ids, hashes, stored = repo.photo_vectors_for_ids(
                session, ids=[h.id for h in ranked], model_key=self.model_key, dim=self.dim
            )
        row_of = {int(photo_id): row for row, photo_id in enumerate(ids.tolist())}
        vectors = np.zeros((len(ranked), self.dim), dtype=np.float32)  # (n, dim)
        known: list[str | None] = [None] * len(ranked)
        for position, hit in enumerate(ranked):
            row = row_of.get(hit.id)
            if row is not None:
                vectors[position], known[position] = stored[row], hashes[row]
        positions = group_positions(vectors, known, self.threshold)
        return [Group(ranked[p[0]], [ranked[q] for q in p[1:]]) for p in positions]
