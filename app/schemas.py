"""What crosses the HTTP boundary.

Limits that come from settings (k's default and maximum, offset's maximum) are checked by the services
and written into the OpenAPI document at app creation (app/api/openapi.py), so they are set in one place."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.services.access import OPEN_SCOPE, AccessScope, shown_path
from app.services.captions import CaptionHit, CaptionSource
from app.services.filters import MAX_PHOTO_ID, SearchFilters, SortOrder
from app.services.listing import ListingOrder
from app.storage.tables import Photo
from models.zero_shot import DEFAULT_PROMPT

TAGS_HELP = (  # zero-shot tags (indexer/labels.py)
    "Only photos tagged with every one of these labels (case-insensitive); tags come from a label "
    "set applied at index time."
)
K_HELP = "How many results to return."
TAKEN_HELP = (
    "Only photos taken {} this ISO date or datetime (a date alone covers its whole day); photos "
    "without a date taken are left out when either bound is given."
)
SORT_HELP = (
    "relevance: best match first. newest / oldest: by date taken (undated photos last) over the "
    "relevant matches: those at or above min_score, or the 300 best without it."
)
DEDUP_HELP = (
    "Collapse near-identical photos (copies of the same file, mirrored or re-encoded copies, burst "
    "shots) into one hit: the best-ranked of them, listing the others in duplicate_ids. false: every "
    "photo is its own hit."
)
PhotoId = Annotated[int, Field(ge=1, le=MAX_PHOTO_ID)]  # larger can name no photo


def date_alone(value: object) -> object:
    """ "2021-07-14" is a date (its whole day), not midnight: read before the datetime parser sees it."""
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return date.fromisoformat(value.strip())
    return value


TakenBound = Annotated[datetime | date | None, BeforeValidator(date_alone)]


class SearchFilterFields(BaseModel):
    """The filters and page every photo search takes."""

    model_config = ConfigDict(extra="forbid")
    k: int | None = Field(default=None, ge=1, description=K_HELP)
    offset: int = Field(default=0, ge=0, description="Skip this many (pagination).")
    min_score: float | None = Field(
        default=None, ge=-1, le=1, allow_inf_nan=False, description="Drop hits below this score."
    )
    collections: list[str] | None = Field(default=None, max_length=100, description="Only these collections.")
    tags: list[str] | None = Field(default=None, max_length=20, description=TAGS_HELP, examples=[["dog"]])
    taken_after: TakenBound = Field(default=None, description=TAKEN_HELP.format("on or after"))
    taken_before: TakenBound = Field(default=None, description=TAKEN_HELP.format("on or before"))
    folders: list[str] | None = Field(
        default=None,
        max_length=100,
        description="Only photos in these folders or below them (relative to their collection's folder).",
        examples=[["2021/holiday"]],
    )
    cameras: list[str] | None = Field(
        default=None,
        max_length=100,
        description='Only photos from these cameras: "make model", or make or model alone; case-insensitive.',
        examples=[["Canon", "Apple iPhone 12"]],
    )
    sort: SortOrder = Field(default="relevance", description=SORT_HELP)
    dedup: bool = Field(default=True, description=DEDUP_HELP)

    def filters(self) -> SearchFilters:
        return SearchFilters.of(
            collections=self.collections,
            tags=self.tags,
            min_score=self.min_score,
            taken_after=day_bound(self.taken_after, end=False),
            taken_before=day_bound(self.taken_before, end=True),
            folders=self.folders,
            cameras=self.cameras,
            sort=self.sort,
        )


def day_bound(value: datetime | date | None, *, end: bool) -> datetime | None:
    """A bound as a naive datetime, the way dates taken are stored (camera clock time): a date alone
    covers its whole day; a time zone given is dropped (cameras record none)."""
    if value is None or isinstance(value, datetime):
        return None if value is None else value.replace(tzinfo=None)
    return datetime.combine(value, time.max if end else time.min)


class PhotoListQuery(BaseModel):
    """GET /v1/photos: the metadata filters and page of a search, without a query or min_score."""

    model_config = ConfigDict(extra="forbid")
    k: int | None = Field(default=None, ge=1, description=K_HELP)
    offset: int = Field(default=0, ge=0, description="Skip this many (pagination).")
    collections: list[str] | None = Field(default=None, max_length=100, description="Only these collections.")
    tags: list[str] | None = Field(default=None, max_length=20, description=TAGS_HELP)
    taken_after: TakenBound = Field(default=None, description=TAKEN_HELP.format("on or after"))
    taken_before: TakenBound = Field(default=None, description=TAKEN_HELP.format("on or before"))
    folders: list[str] | None = Field(
        default=None, max_length=100, description="Only photos in these folders or below them."
    )
    cameras: list[str] | None = Field(
        default=None,
        max_length=100,
        description='Only photos from these cameras: "make model", make or model alone.',
    )
    sort: ListingOrder = Field(
        default="newest",
        description="By date taken, undated last, then by id; relevance is refused (there is no query).",
    )

    def filters(self) -> SearchFilters:
        return SearchFilters.of(
            collections=self.collections,
            tags=self.tags,
            taken_after=day_bound(self.taken_after, end=False),
            taken_before=day_bound(self.taken_before, end=True),
            folders=self.folders,
            cameras=self.cameras,
            sort=self.sort,
        )


QUERY_HELP = (
    "What the photo shows, in words. Terms may be added and subtracted (' + ' and ' - ' with spaces "
    "around them) and weighted ('2:beach'): 'golden retriever + beach - snow'. May be empty when "
    "photo ids are given."
)
PHOTO_IDS_HELP = "Indexed photos whose vectors are {} the query (at most 100)."


class TextSearch(SearchFilterFields):
    query: str = Field(description=QUERY_HELP, examples=["a dog running on the beach"])
    positive_photo_ids: list[PhotoId] = Field(
        default=[], max_length=100, description=PHOTO_IDS_HELP.format("added to")
    )
    negative_photo_ids: list[PhotoId] = Field(
        default=[], max_length=100, description=PHOTO_IDS_HELP.format("subtracted from")
    )


class PhotoIdQuery(SearchFilterFields):
    photo_id: PhotoId = Field(description="An indexed photo to use as the query.")


class ClassifyByPhoto(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo_id: PhotoId = Field(description="An indexed photo to label.")
    labels: list[str] = Field(min_length=1, examples=[["dog", "cat", "beach"]])
    prompt: str = Field(
        default=DEFAULT_PROMPT, description="How a label becomes a sentence; {} is replaced by the label."
    )


class LabelScorePublic(BaseModel):
    label: str
    probability: float = Field(description="Share of the given labels, 0..1; all add up to 1.")
    score: float = Field(description="Cosine similarity of the photo and the prompted label, -1..1.")


class ClassifyResponse(BaseModel):
    model: str
    prompt: str
    labels: list[LabelScorePublic] = Field(description="Every label, most probable first.")


class PhotoPublic(BaseModel):
    id: int
    collection: str
    path: str = Field(
        description="Absolute on the server for admin keys (and a loopback server without auth); "
        "relative to the collection's folder for other keys."
    )
    folder: str
    size: int
    sha256: str | None = Field(description="The file's content hash; null for keys that are not admin.")
    width: int | None
    height: int | None
    format: str | None
    taken_at: datetime | None
    camera_make: str | None
    camera_model: str | None
    status: str
    error: str | None = None
    captions: list[str]
    tags: list[str] = Field(default=[], description="Zero-shot labels that fit the photo, best first.")
    file_url: str
    thumbnail_url: str

    @classmethod
    def from_row(cls, photo: Photo, scope: AccessScope = OPEN_SCOPE) -> PhotoPublic:
        return cls(
            id=photo.id,
            collection=photo.collection.name,
            path=shown_path(photo, scope),
            folder=photo.folder,
            size=photo.size,
            sha256=photo.sha256 if scope.sees_server_files else None,
            width=photo.width,
            height=photo.height,
            format=photo.format,
            taken_at=photo.taken_at,
            camera_make=photo.camera_make,
            camera_model=photo.camera_model,
            status=photo.status,
            error=photo.error,
            captions=[c.text for c in photo.captions],
            tags=list(dict.fromkeys(t.tag for t in photo.tags)),
            file_url=f"/v1/photos/{photo.id}/file",
            thumbnail_url=f"/v1/photos/{photo.id}/thumbnail",
        )


class PhotoHitPublic(BaseModel):
    score: float = Field(description="Cosine similarity to the query, -1..1; higher is closer.")
    rerank_score: float | None = Field(
        default=None,
        description="For models with a re-ranker (text search): its relevance 0..1, by which hits are "
        "ordered; null otherwise.",
    )
    rank_score: float | None = Field(
        default=None,
        description="For models with a query bank (text search): the cosine minus the photo's hubness "
        "offset, by which hits are ordered; null otherwise.",
    )
    duplicate_ids: list[int] = Field(
        default=[],
        description="With dedup: the ids of photos near-identical to this one, which it stands for, best "
        "match first (only photos the key may see); empty when none or without dedup.",
    )
    photo: PhotoPublic


class SearchResponse(BaseModel):
    model: str
    k: int
    offset: int
    hits: list[PhotoHitPublic]


class PhotoListResponse(BaseModel):
    k: int
    offset: int
    total: int = Field(description="How many photos the filters allow in all, over every page.")
    photos: list[PhotoPublic]


class CaptionHitPublic(BaseModel):
    score: float = Field(description="Cosine similarity to the query, -1..1.")
    rank_score: float | None = Field(
        default=None,
        description="For models with a query bank (photo queries): the cosine minus the caption's hubness "
        "offset, by which captions are ordered; null otherwise.",
    )
    caption_id: int
    text: str
    photo_id: int

    @classmethod
    def from_hit(cls, hit: CaptionHit) -> CaptionHitPublic:
        """A collection caption (its ids are required here)."""
        return cls.model_validate(hit, from_attributes=True)


SOURCES_HELP = (
    "Where captions may come from: 'collection' (captions attached to the key's collections with "
    "`photosearch index --captions`) and 'model' (the model's caption bank: the captions it was trained "
    "on, visible to every key). Default: both."
)


class AnnotateByPhoto(PhotoIdQuery):
    """`collections` narrows the collection captions to those collections (the model's are everyone's);
    the other filter fields are accepted and have no effect on annotation."""

    sources: list[CaptionSource] = Field(
        default=["collection", "model"], min_length=1, max_length=2, description=SOURCES_HELP
    )


class AnnotationPublic(BaseModel):
    score: float = Field(description="Cosine similarity to the photo, -1..1.")
    rank_score: float | None = Field(
        default=None,
        description="For models with a query bank: the cosine minus the caption's hubness offset, by which "
        "captions of both sources are ordered; null otherwise (ordered by score).",
    )
    source: CaptionSource = Field(
        description="'collection': attached to a photo of the key's collections; 'model': from the model's "
        "caption bank (its training captions)."
    )
    text: str
    caption_id: int | None = Field(description="The collection caption's id; null for model captions.")
    photo_id: int | None = Field(
        description="The photo a collection caption belongs to; null for model captions."
    )

    @classmethod
    def from_hit(cls, hit: CaptionHit) -> AnnotationPublic:
        return cls.model_validate(hit, from_attributes=True)


class AnnotateResponse(BaseModel):
    model: str
    captions: list[AnnotationPublic] = Field(
        description="Best first; an indexed photo's own captions (asked for by photo_id) come first."
    )


class CaptionSearch(BaseModel):  # caption→caption search
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="Words to match captions against.", examples=["a dog on a beach"])
    k: int | None = Field(default=None, ge=1, description=K_HELP)


class CaptionSearchResponse(BaseModel):
    model: str
    k: int
    captions: list[CaptionHitPublic]


class CollectionPublic(BaseModel):
    id: int
    name: str
    folders: list[str] = Field(
        description="The folders indexed into it: absolute on the server for admin keys (and a loopback "
        "server without auth), each folder's own name for other keys."
    )
    photos: int = Field(description="Photos indexed and searchable (status ok).")
    last_indexed_at: datetime | None = Field(
        description="When the indexer last changed its search index for the served model; null if never."
    )


class CollectionListResponse(BaseModel):
    collections: list[CollectionPublic] = Field(description="The collections the API key sees, by name.")
