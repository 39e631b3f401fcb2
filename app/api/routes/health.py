"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import SearchDep
from app.api.errors import error_responses
from models.errors import NotReadyError

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process is up. Answered on the event loop, so it needs no worker thread: it stays quick
    while a burst of searches holds them all."""
    return {"status": "ok"}


@router.get("/ready", responses=error_responses(503))
def ready(search: SearchDep) -> dict[str, Any]:
    """Model loaded, database reachable and at least one photo index to serve."""
    try:
        facts = search.readiness()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as not ready
        raise NotReadyError(f"unavailable: {exc}") from exc
    if not facts["indexed_vectors"]:
        raise NotReadyError(search.not_indexed_reason())
    return {"status": "ready", **facts}
