"""Photos without a query: the indexed photos a request's filters allow, in date order, a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.services.filters import Page, SearchFilters
from app.services.retrieval import PhotoCandidates
from app.storage import repository as repo
from app.storage.repository.metadata_filters import MetadataFilter, matching_query
from app.storage.tables import Photo

# relevance needs a query to be relevant to, so a listing takes only the date orders
ListingOrder = Literal["newest", "oldest"]


@dataclass(frozen=True)
class PhotoListing:
    total: int  # every photo the filters allow, not only this page's
    photos: list[Photo]


class PhotoLister:
    def __init__(self, sessions: sessionmaker[Session], candidates: PhotoCandidates) -> None:
        self.sessions = sessions
        self.candidates = candidates  # resolves collection names within the request's scope

    def list(self, page: Page, filters: SearchFilters) -> PhotoListing:
        """Status-ok photos passing `filters`, by date taken (undated last), then by id: a total
        order, so that pages follow on from each other without repeats or gaps."""
        wanted = MetadataFilter(
            collection_ids=self.candidates.collection_ids(filters.collections, filters.within),
            tags=filters.tags,
            taken_after=filters.taken_after,
            taken_before=filters.taken_before,
            folders=filters.folders,
            cameras=filters.cameras,
        )
        matching = matching_query(wanted).subquery()
        taken = Photo.taken_at.desc() if filters.sort == "newest" else Photo.taken_at.asc()
        # is_(None) first: NULL dates sort last on every database (SQLite and PostgreSQL disagree)
        ordered = (
            select(Photo.id)
            .where(Photo.id.in_(select(matching.c.id)))
            .order_by(Photo.taken_at.is_(None), taken, Photo.id)
            .offset(page.offset)
            .limit(page.k)
        )
        with self.sessions() as session:
            total = session.scalar(select(func.count()).select_from(matching)) or 0
            ids = [int(i) for i in session.scalars(ordered)]
            photos = repo.get_photos(session, ids=ids)
        return PhotoListing(total, [photos[i] for i in ids if i in photos])
