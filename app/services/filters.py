"""What a search asks for beyond its query: filters, the page of results, and checks on free text."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from app.core.config import ApiSettings
from models.errors import InvalidInputError

# Photo ids come from a database sequence and never get near this: the largest integer every JSON
# reader holds exactly (JavaScript's Number.MAX_SAFE_INTEGER), well inside SQL's BIGINT, so that a
# larger number is refused as input instead of failing to bind in the database driver.
MAX_PHOTO_ID = 2**53 - 1

# relevance: best match first; newest/oldest: date taken, over the relevant candidates, undated last
SortOrder = Literal["relevance", "newest", "oldest"]


def plain_text(value: str, what: str) -> str:
    """`value` unchanged, or InvalidInputError when it cannot be stored or embedded as text: a NUL
    character (PostgreSQL refuses it) or a lone UTF-16 surrogate (not encodable as UTF-8)."""
    if "\x00" in value:
        raise InvalidInputError(f"{what} contains a NUL character; send plain text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInputError(
            f"{what} contains a lone surrogate (\\u{ord(value[exc.start]):04x}); send valid Unicode text"
        ) from exc
    return value


def checked_photo_id(photo_id: int) -> int:
    if not 1 <= photo_id <= MAX_PHOTO_ID:
        raise InvalidInputError(f"photo ids are between 1 and {MAX_PHOTO_ID}; got {photo_id}")
    return photo_id


@dataclass(frozen=True)
class SearchFilters:
    """Which photos a search may return. Checked when made, so every layer below can trust it."""

    collections: tuple[str, ...] = ()  # only these collections (by name); empty: all
    tags: tuple[str, ...] = ()  # only photos carrying every one of these zero-shot tags
    min_score: float | None = None  # drop hits whose cosine is below this
    # photo ids left out: the query photo of a photo→photo search, the example photos of a text search
    exclude: frozenset[int] = frozenset()
    within: frozenset[int] | None = None  # the request's key sees only these collection ids; None: all
    taken_after: datetime | None = None  # inclusive; photos without a date are left out when either is set
    taken_before: datetime | None = None
    folders: tuple[str, ...] = ()  # relative to the collection's folder; each matches itself and below
    cameras: tuple[str, ...] = ()  # "make model", make alone or model alone, case-insensitive
    sort: SortOrder = "relevance"

    def __post_init__(self) -> None:
        for name in self.collections:
            plain_text(name, "a collection name")
        for tag in self.tags:
            plain_text(tag, "a tag")
        if self.min_score is not None and not (math.isfinite(self.min_score) and -1 <= self.min_score <= 1):
            raise InvalidInputError(f"min_score is a cosine between -1 and 1; got {self.min_score}")
        for text in (*self.folders, *self.cameras):
            plain_text(text, "a folder or camera")
        if self.taken_after and self.taken_before and self.taken_after > self.taken_before:
            raise InvalidInputError(
                f"taken_after ({self.taken_after.isoformat()}) is later than taken_before "
                f"({self.taken_before.isoformat()}): no photo can match"
            )

    @property
    def by_metadata(self) -> bool:
        """Whether SQL narrows the photos before scoring (any filter but collections and min_score)."""
        dated = self.taken_after is not None or self.taken_before is not None
        return bool(self.tags or self.folders or self.cameras or dated)

    @classmethod
    def of(
        cls,
        *,
        collections: list[str] | None = None,
        tags: list[str] | None = None,
        min_score: float | None = None,
        taken_after: datetime | None = None,
        taken_before: datetime | None = None,
        folders: list[str] | None = None,
        cameras: list[str] | None = None,
        sort: SortOrder = "relevance",
    ) -> SearchFilters:
        return cls(
            tuple(collections or ()),
            tuple(tags or ()),
            min_score,
            taken_after=taken_after,
            taken_before=taken_before,
            folders=tuple(folders or ()),
            cameras=tuple(cameras or ()),
            sort=sort,
        )


NO_FILTERS = SearchFilters()


@dataclass(frozen=True)
class Page:
    """Which slice of the ranked results to return: `k` hits after skipping `offset`."""

    k: int
    offset: int = 0


def page_of(api: ApiSettings, k: int | None = None, offset: int | None = None) -> Page:
    """A page within the configured limits; k defaults to api.default_k."""
    k = api.default_k if k is None else k
    offset = offset or 0
    if not 1 <= k <= api.max_k:
        raise InvalidInputError(f"k must be between 1 and {api.max_k}; got {k}")
    if not 0 <= offset <= api.max_offset:
        raise InvalidInputError(f"offset must be between 0 and {api.max_offset}; got {offset}")
    return Page(k, offset)
