"""What crosses the HTTP boundary."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.storage.tables import Caption, Photo

MAX_K = 1000
TAGS_HELP = (  # zero-shot tags (indexer/labels.py)
    "Only photos tagged with every one of these labels (case-insensitive); tags come from a label "
    "set applied at index time."
)


class TextSearch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="What the photo shows, in words.", examples=["a dog running on the beach"])
    k: int = Field(default=20, ge=1, le=MAX_K, description="How many photos to return.")
    offset: int = Field(default=0, ge=0, description="Skip this many (pagination).")
    min_score: float | None = Field(default=None, ge=-1, le=1, description="Drop hits below this score.")
    collections: list[str] | None = Field(default=None, description="Only these collections.")
    tags: list[str] | None = Field(default=None, max_length=20, description=TAGS_HELP, examples=[["dog"]])


class PhotoIdQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo_id: int = Field(description="An indexed photo to use as the query.")
    k: int = Field(default=20, ge=1, le=MAX_K)
    offset: int = Field(default=0, ge=0)
    min_score: float | None = Field(default=None, ge=-1, le=1)
    collections: list[str] | None = None
    tags: list[str] | None = Field(default=None, max_length=20, description=TAGS_HELP)


class PhotoPublic(BaseModel):
    id: int
    collection: str
    path: str
    folder: str
    size: int
    sha256: str
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
    def from_row(cls, photo: Photo) -> PhotoPublic:
        return cls(
            id=photo.id,
            collection=photo.collection.name,
            path=photo.path,
            folder=photo.folder,
            size=photo.size,
            sha256=photo.sha256,
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
    photo: PhotoPublic


class SearchResponse(BaseModel):
    model: str
    k: int
    offset: int
    hits: list[PhotoHitPublic]


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
    def from_row(cls, caption: Caption, score: float, rank_score: float | None = None) -> CaptionHitPublic:
        return cls(
            score=score,
            rank_score=rank_score,
            caption_id=caption.id,
            text=caption.text,
            photo_id=caption.photo_id,
        )


class AnnotateResponse(BaseModel):
    model: str
    captions: list[CaptionHitPublic]


class CaptionSearch(BaseModel):  # caption→caption search (joint model zoo)
    model_config = ConfigDict(extra="forbid")
    query: str = Field(description="Words to match captions against.", examples=["a dog on a beach"])
    k: int = Field(default=20, ge=1, le=MAX_K, description="How many captions to return.")


class CaptionSearchResponse(BaseModel):
    model: str
    k: int
    captions: list[CaptionHitPublic]
