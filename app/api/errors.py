"""Domain errors → HTTP, in one place. Every error answer is {"detail": "<what was wrong>"}."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from models.errors import (
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    PhotoSearchError,
    TooBusyError,
    UnsupportedMediaTypeError,
)

# Most specific first: the first kind an error is an instance of gives its status.
STATUS: tuple[tuple[type[PhotoSearchError], int], ...] = (
    (PayloadTooLargeError, 413),
    (UnsupportedMediaTypeError, 415),
    (InvalidInputError, 422),
    (NotFoundError, 404),
    (TooBusyError, 429),
    (NotReadyError, 503),
)


def status_of(error: PhotoSearchError) -> int:
    return next((code for kind, code in STATUS if isinstance(error, kind)), 400)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PhotoSearchError)
        return JSONResponse(status_code=status_of(exc), content={"detail": str(exc)})

    app.add_exception_handler(PhotoSearchError, handle)
