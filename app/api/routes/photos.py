"""Photo metadata, original files, thumbnails."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import AccessDep, PhotosDep, SearchDep
from app.api.errors import error_responses
from app.schemas import PhotoListQuery, PhotoListResponse, PhotoPublic
from app.services.filters import MAX_PHOTO_ID

router = APIRouter(prefix="/v1/photos", tags=["photos"])

PhotoIdPath = Annotated[int, Path(ge=1, le=MAX_PHOTO_ID, description="An indexed photo's id.")]
BINARY = {"schema": {"type": "string", "format": "binary"}}
FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/*": BINARY, "application/octet-stream": BINARY}, "description": "The file."}
}
THUMBNAIL_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": BINARY}, "description": "A JPEG thumbnail."}
}


@router.get("", response_model=PhotoListResponse, responses=error_responses(404, 422))
def list_photos(
    query: Annotated[PhotoListQuery, Query()], search: SearchDep, access: AccessDep
) -> PhotoListResponse:
    """Indexed photos under the search filters (repeat a list parameter for several values), newest or
    oldest first by date taken; only the collections the API key sees."""
    page = search.page(query.k, query.offset)
    listing = search.listing.list(page, access.limit(query.filters()))
    photos = [PhotoPublic.from_row(photo, access) for photo in listing.photos]
    return PhotoListResponse(k=page.k, offset=page.offset, total=listing.total, photos=photos)


@router.get("/{photo_id}", response_model=PhotoPublic, responses=error_responses(404, 422))
def get_photo(photo_id: PhotoIdPath, photos: PhotosDep, access: AccessDep) -> PhotoPublic:
    return PhotoPublic.from_row(photos.get(photo_id, access.collection_ids), access)


@router.get(
    "/{photo_id}/file", response_class=FileResponse, responses={**FILE_RESPONSES, **error_responses(404, 422)}
)
def get_file(photo_id: PhotoIdPath, photos: PhotosDep, access: AccessDep) -> FileResponse:
    """The original file, while it is still the one that was indexed."""
    path = photos.original_file(photo_id, access.collection_ids)
    media_type, _ = mimetypes.guess_type(path.name)  # image/... for every format the indexer takes
    return FileResponse(path, media_type=media_type or "application/octet-stream")


@router.get(
    "/{photo_id}/thumbnail",
    response_class=FileResponse,
    responses={**THUMBNAIL_RESPONSES, **error_responses(404, 422, 429)},
)
async def get_thumbnail(photo_id: PhotoIdPath, photos: PhotosDep, access: AccessDep) -> FileResponse:
    """A JPEG of at most api.thumbnail_px on each side, upright."""
    path = await run_in_threadpool(photos.thumbnail, photo_id, access.collection_ids)
    return FileResponse(path, media_type="image/jpeg")
