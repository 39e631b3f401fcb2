"""Request bodies a route parses itself: a multipart upload or a JSON body on the same route."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData, UploadFile

from app.core.config import Settings
from app.schemas import ClassifyByPhoto, PhotoIdQuery
from app.services.filters import SearchFilters
from app.services.query_vectors import ImageQuery
from models.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from models.zero_shot import DEFAULT_PROMPT

Schema = TypeVar("Schema", bound=BaseModel)


@dataclass(frozen=True)
class ImageRequest:
    """A photo query as the route hands it to the services."""

    image: ImageQuery
    k: int | None
    offset: int
    filters: SearchFilters
    dedup: bool = True  # near-identical photos as one hit (search only)


@dataclass(frozen=True)
class ClassifyRequest:
    image: ImageQuery
    labels: list[str]
    prompt: str


def body_kind(request: Request, expected: str) -> str:
    """'multipart' or 'json', or UnsupportedMediaTypeError saying what the route takes."""
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("multipart/form-data"):
        return "multipart"
    if content_type.startswith("application/json"):
        return "json"
    raise UnsupportedMediaTypeError(
        f"content type {content_type or 'none'!r} not supported: send multipart/form-data with {expected}"
    )


async def read_json(request: Request, schema: type[Schema]) -> Schema:
    """The body as `schema`; malformed JSON (bad syntax, bad UTF-8, nesting too deep) is a 422."""
    try:
        body = json.loads(await request.body())
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidInputError(f"body is not valid JSON: {str(exc)[:200]}") from exc
    return validated(schema, body)


def validated(schema: type[Schema], body: Any) -> Schema:
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from exc


async def read_upload(request: Request, settings: Settings) -> tuple[bytes, FormData]:
    """A multipart body's image (part `file`) within the upload limit, and the rest of its form.
    The body as a whole is capped before this by the body-limit middleware (app/core/body_limit.py)."""
    form = await request.form(max_files=1, max_fields=200)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInputError("multipart body needs a 'file' part holding the image")
    limit = settings.api.max_upload_bytes
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(f"upload is over the limit of {limit:,} bytes")
    return data, form


def form_text(form: FormData, key: str) -> list[str]:
    """A repeated text field's values (tags=dog&tags=beach); file parts under that name are refused."""
    values = form.getlist(key)
    if any(not isinstance(v, str) for v in values):
        raise InvalidInputError(f"form field {key!r} must be text, not a file")
    return [str(v) for v in values]


async def image_request(request: Request, settings: Settings) -> ImageRequest:
    """Multipart (`file`, optional `k`, `offset`, `min_score`, `taken_after`, `taken_before`, `sort`,
    `dedup`, repeated `collections`, `tags`, `folders`, `cameras`) or JSON
    {"photo_id": ..., "k": ...}."""
    if body_kind(request, "a 'file' part, or application/json with a photo_id") == "json":
        query = await read_json(request, PhotoIdQuery)
        photo = ImageQuery(photo_id=query.photo_id)
        return ImageRequest(photo, query.k, query.offset, query.filters(), query.dedup)
    data, form = await read_upload(request, settings)
    fields: dict[str, Any] = {}
    for key in ("k", "offset", "min_score", "taken_after", "taken_before", "sort", "dedup"):
        values = [v for v in form_text(form, key) if v != ""]
        if len(values) > 1:
            raise InvalidInputError(f"form field {key!r} is given {len(values)} times; give it once")
        if values:
            fields[key] = values[0]
    for key in ("collections", "tags", "folders", "cameras"):
        values = [v for v in form_text(form, key) if v.strip()]
        if values:
            fields[key] = values
    query = validated(PhotoIdQuery, {"photo_id": 1, **fields})  # the upload stands in for the id
    return ImageRequest(ImageQuery(upload=data), query.k, query.offset, query.filters(), query.dedup)


async def classify_request(request: Request, settings: Settings) -> ClassifyRequest:
    """Multipart (`file`, repeated `labels`, optional `prompt`) or JSON {"photo_id", "labels", "prompt"}."""
    expected = "a 'file' part and 'labels' fields, or application/json with photo_id and labels"
    if body_kind(request, expected) == "json":
        body = await read_json(request, ClassifyByPhoto)
        return ClassifyRequest(ImageQuery(photo_id=body.photo_id), body.labels, body.prompt)
    data, form = await read_upload(request, settings)
    prompt = next((p for p in form_text(form, "prompt") if p), DEFAULT_PROMPT)
    return ClassifyRequest(ImageQuery(upload=data), form_text(form, "labels"), prompt)
