"""The collections the request's API key may see."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import AccessDep, SearchDep
from app.api.errors import error_responses
from app.schemas import CollectionListResponse, CollectionPublic
from app.services.collections import visible_collections

router = APIRouter(prefix="/v1/collections", tags=["collections"])


@router.get("", response_model=CollectionListResponse, responses=error_responses(401))
async def list_collections(search: SearchDep, access: AccessDep) -> CollectionListResponse:
    """The collections this API key sees (an admin key: all), by name, with their folders, indexed photo
    count and when their search index last changed."""
    found = await run_in_threadpool(
        visible_collections, search.sessions, model_key=search.model_key, scope=access
    )
    return CollectionListResponse(
        collections=[CollectionPublic.model_validate(c, from_attributes=True) for c in found]
    )
