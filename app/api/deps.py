"""Typed dependencies and request parsing shared by the routes."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile

from app.core.config import Settings
from app.schemas import MAX_K, PhotoIdQuery
from app.services.search import ImageQuery, SearchService
from models.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError


def get_search(request: Request) -> SearchService:
    service: SearchService = request.app.state.search
    return service


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SearchDep = Annotated[SearchService, Depends(get_search)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]

IMAGE_QUERY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the image"},
                        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 20},
                        "offset": {"type": "integer", "minimum": 0, "default": 0},
                        "min_score": {"type": "number"},
                    },
                }
            },
            "application/json": {"schema": PhotoIdQuery.model_json_schema()},
        },
    }
}


async def read_upload(request: Request, settings: Settings) -> tuple[bytes, FormData]:
    """A multipart body's image (part `file`) within the upload limit, and the rest of its form."""
    limit = settings.api.max_upload_bytes
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit + 1024 * 1024:
        raise PayloadTooLargeError(f"upload is {declared:,} bytes; the limit is {limit:,}")
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInputError("multipart body needs a 'file' part holding the image")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(f"upload is over the limit of {limit:,} bytes")
    return data, form


async def image_query(
    request: Request, settings: SettingsDep
) -> tuple[ImageQuery, PhotoIdQuery | None, dict[str, Any]]:
    """Multipart upload (field `file`, optional `k`, `offset`, `min_score`) or JSON {"photo_id": ...}."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        data, form = await read_upload(request, settings)
        fields: dict[str, Any] = {
            key: form.get(key) for key in ("k", "offset", "min_score") if form.get(key) not in (None, "")
        }
        for key in ("collections", "tags"):  # repeated form fields: tags=dog&tags=beach
            values = [str(v) for v in form.getlist(key) if str(v).strip()]
            if values:
                fields[key] = values
        params = _validate({"photo_id": 0, **fields}).model_dump(exclude={"photo_id"})
        return ImageQuery(upload=data), None, params
    if content_type.startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"body is not valid JSON: {exc}") from exc
        query = _validate(body)
        params = query.model_dump(exclude={"photo_id"})
        return ImageQuery(photo_id=query.photo_id), query, params
    raise UnsupportedMediaTypeError(
        f"content type {content_type or 'none'!r} not supported: send multipart/form-data with a "
        "'file' part, or application/json with a photo_id"
    )


def _validate(body: Any) -> PhotoIdQuery:
    try:
        return PhotoIdQuery.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


ImageQueryDep = Annotated[tuple[ImageQuery, PhotoIdQuery | None, dict[str, Any]], Depends(image_query)]
