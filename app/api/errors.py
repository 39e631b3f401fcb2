"""Domain errors → HTTP, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.core.errors import (
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    PhotoSearchError,
)
from app.storage.vector_index import IndexFileError

STATUS: dict[type[Exception], int] = {
    InvalidInputError: 422,
    NotFoundError: 404,
    PayloadTooLargeError: 413,
    NotReadyError: 503,
    IndexFileError: 503,
}


class UnsupportedMediaTypeError(PhotoSearchError):
    pass


STATUS[UnsupportedMediaTypeError] = 415


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 400)
        return JSONResponse(status_code=status, content={"detail": str(exc)})

    app.add_exception_handler(PhotoSearchError, handle)
    app.add_exception_handler(IndexFileError, handle)
