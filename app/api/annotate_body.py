"""POST /v1/annotate's body: a photo query (app/api/bodies.py) plus the caption sources to draw on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.api.bodies import ImageRequest, body_kind, form_text, image_request, read_json, validated
from app.api.deps import SettingsDep
from app.core.config import Settings
from app.schemas import AnnotateByPhoto
from app.services.captions import CaptionSource
from app.services.query_vectors import ImageQuery


@dataclass(frozen=True)
class AnnotateRequest:
    photo: ImageRequest
    sources: tuple[CaptionSource, ...]


async def annotate_request(request: Request, settings: Settings) -> AnnotateRequest:
    """JSON {"photo_id", "k", "sources"}, or multipart (`file`, `k`, repeated `sources`)."""
    if body_kind(request, "a 'file' part, or application/json with a photo_id") == "json":
        body = await read_json(request, AnnotateByPhoto)
        photo = ImageRequest(ImageQuery(photo_id=body.photo_id), body.k, body.offset, body.filters())
        return AnnotateRequest(photo, tuple(body.sources))
    photo = await image_request(request, settings)
    sources = [s.strip() for s in form_text(await request.form(), "sources") if s.strip()]
    fields = {"photo_id": 1, "sources": sources} if sources else {"photo_id": 1}
    return AnnotateRequest(photo, tuple(validated(AnnotateByPhoto, fields).sources))


async def get_annotate_request(request: Request, settings: SettingsDep) -> AnnotateRequest:
    return await annotate_request(request, settings)


AnnotateRequestDep = Annotated[AnnotateRequest, Depends(get_annotate_request)]
