"""The search page: static HTML, CSS and JavaScript shipped in app/web/, which call the JSON API.

Served without a key even when the API requires one: the page holds no data, and it asks for a key
when the API answers 401."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
MEDIA_TYPES = {"app.js": "text/javascript", "style.css": "text/css"}
# The page is small and changes with each release; revalidating keeps an upgraded server's page current.
NO_STALE = {"Cache-Control": "no-cache"}


@router.get("/")
def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=NO_STALE)


@router.get("/web/{asset}")
def asset(asset: Literal["app.js", "style.css"]) -> FileResponse:
    """Only the page's own files; a fixed list, so no path from a request reaches the file system."""
    return FileResponse(WEB_DIR / asset, media_type=MEDIA_TYPES[asset], headers=NO_STALE)
