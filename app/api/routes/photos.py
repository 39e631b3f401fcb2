"""Photo metadata, original files, thumbnails."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.deps import SearchDep, SettingsDep
from app.schemas import PhotoPublic
from app.services import photos

router = APIRouter(prefix="/v1/photos", tags=["photos"])


@router.get("/{photo_id}", response_model=PhotoPublic)
def get_photo(photo_id: int, search: SearchDep) -> PhotoPublic:
    return PhotoPublic.from_row(photos.get_photo(search.sessions, photo_id))


@router.get("/{photo_id}/file", response_class=FileResponse)
def get_file(photo_id: int, search: SearchDep) -> FileResponse:
    return FileResponse(photos.original_file(search.sessions, photo_id))


@router.get("/{photo_id}/thumbnail", response_class=FileResponse)
def get_thumbnail(photo_id: int, search: SearchDep, settings: SettingsDep) -> FileResponse:
    path = photos.thumbnail(
        search.sessions, photo_id, settings.data_dir / "thumbnails", settings.api.thumbnail_px
    )
    return FileResponse(path, media_type="image/jpeg")
