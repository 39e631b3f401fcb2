"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import SearchDep
from app.api.errors import error_responses
from models.errors import NotReadyError

router = APIRouter(tags=["health"])


@router.get("/health")
def health() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/ready", responses=error_responses(503))
def ready(search: SearchDep) -> dict[str, Any]:
    """Model loaded, database reachable and at least one photo index to serve."""
    try:
        facts = search.readiness()
    except Exception as exc:  # noqa: BLE001 - readiness reports any failure as not ready
        raise NotReadyError(f"unavailable: {exc}") from exc
    if not facts["indexed_vectors"]:
        raise NotReadyError("no photos indexed for this model: run `photosearch index PATH`")
    return {"status": "ready", **facts}
