"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", response_model=None)
def ready(request: Request) -> JSONResponse | dict[str, Any]:
    """Model loaded, database reachable and at least one photo index to serve."""
    search = getattr(request.app.state, "search", None)
    if search is None:
        return JSONResponse(status_code=503, content={"status": "starting", "detail": "model not loaded"})
    try:
        facts = search.readiness()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure
        return JSONResponse(status_code=503, content={"status": "unavailable", "detail": str(exc)})
    if not facts["indexed_vectors"]:
        return JSONResponse(
            status_code=503,
            content={
                "status": "empty",
                "detail": "no photos indexed for this model: run `photosearch index PATH`",
                **facts,
            },
        )
    return {"status": "ready", **facts}
