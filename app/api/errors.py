"""Domain errors → HTTP, in one place. Every error answer is {"detail": ...}: a sentence saying what was
wrong, or, for a request that does not fit its schema, FastAPI's list of the fields at fault."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from models.errors import (
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    PhotoSearchError,
    TooBusyError,
    UnsupportedMediaTypeError,
)

log = logging.getLogger(__name__)

# Most specific first: the first kind an error is an instance of gives its status.
STATUS: tuple[tuple[type[PhotoSearchError], int], ...] = (
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (InvalidInputError, 422),
    (NotFoundError, 404),
    (TooBusyError, 429),
    (NotReadyError, 503),
)


class FieldError(BaseModel):
    """One field of a request that does not fit its schema (FastAPI's standard shape)."""

    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    detail: str | list[FieldError] = Field(
        description="What was wrong and what would be right; for a request that does not fit its "
        "schema, the fields at fault."
    )


DESCRIPTIONS = {
    400: "The body could not be parsed: JSON that is not UTF-8 text, or a malformed multipart form.",
    401: "An API key is required (auth on), or the key sent is unknown or revoked.",
    404: "Not found: an unknown id or collection.",
    413: "The body or upload is over its size limit.",
    415: "The body's content type is not one this route takes.",
    422: "The request is well-formed but unusable: the detail says why.",
    429: "The server is at its limit of concurrent image and text work; retry shortly.",
    503: "Not ready: nothing indexed for the served model yet.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each status it can answer with, all in the ErrorResponse shape."""
    return {code: {"model": ErrorResponse, "description": DESCRIPTIONS[code]} for code in statuses}


def status_of(error: PhotoSearchError) -> int:
    return next((code for kind, code in STATUS if isinstance(error, kind)), 400)


class ErrorJSONResponse(JSONResponse):
    """ASCII JSON: whatever an error echoes back (a lone surrogate, a NaN the client sent) cannot make
    the error answer itself fail to encode."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def field_error(error: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's shape for one field at fault; the input it echoes is kept when JSON can carry it."""
    shown = ("type", "loc", "msg", "ctx")
    item: dict[str, Any] = {key: jsonable_encoder(error[key]) for key in shown if key in error}
    try:
        echoed = jsonable_encoder(error.get("input"))
        json.dumps(echoed, allow_nan=False)
        item["input"] = echoed
    except (TypeError, ValueError):  # NaN, Infinity: JSON has no way to say them
        pass
    return item


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PhotoSearchError)
        return ErrorJSONResponse(status_code=status_of(exc), content={"detail": str(exc)})

    async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return ErrorJSONResponse(status_code=422, content={"detail": [field_error(e) for e in exc.errors()]})

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return ErrorJSONResponse(status_code=500, content={"detail": "internal error; see the server log"})

    app.add_exception_handler(PhotoSearchError, handle)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)
