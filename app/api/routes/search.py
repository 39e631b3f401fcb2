"""Text→photo, photo→photo and photo→caption search."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.annotate_body import AnnotateRequestDep
from app.api.deps import AccessDep, CaptionsDep, ImageRequestDep, SearchDep
from app.api.errors import error_responses
from app.api.openapi import ANNOTATE_BODY, IMAGE_QUERY_BODY
from app.schemas import (
    AnnotateResponse,
    AnnotationPublic,
    PhotoHitPublic,
    PhotoPublic,
    SearchResponse,
    TextSearch,
)
from app.services.access import AccessScope
from app.services.filters import Page
from app.services.search import PhotoHit

router = APIRouter(prefix="/v1", tags=["search"])

PHOTO_QUERY_ERRORS = error_responses(400, 404, 413, 415, 422, 429, 503)


def search_response(model: str, page: Page, hits: list[PhotoHit], access: AccessScope) -> SearchResponse:
    return SearchResponse(
        model=model,
        k=page.k,
        offset=page.offset,
        hits=[
            PhotoHitPublic(
                score=h.score,
                rerank_score=h.rerank_score,
                rank_score=h.rank_score,
                duplicate_ids=h.duplicate_ids,
                photo=PhotoPublic.from_row(h.photo, access),
            )
            for h in hits
        ],
    )


@router.post(
    "/search/text", response_model=SearchResponse, responses=error_responses(400, 404, 413, 422, 429, 503)
)
def search_text(body: TextSearch, search: SearchDep, access: AccessDep) -> SearchResponse:
    """Photos that best match a description."""
    page = search.page(body.k, body.offset)
    filters = access.limit(body.filters())
    photo_ids = (body.positive_photo_ids, body.negative_photo_ids)
    hits = search.search_text(
        body.query, k=page.k, offset=page.offset, filters=filters, photo_ids=photo_ids, dedup=body.dedup
    )
    return search_response(search.model_key, page, hits, access)


@router.post(
    "/search/image",
    response_model=SearchResponse,
    openapi_extra=IMAGE_QUERY_BODY,
    responses=PHOTO_QUERY_ERRORS,
)
async def search_image(query: ImageRequestDep, search: SearchDep, access: AccessDep) -> SearchResponse:
    """Photos that look like an uploaded image, or like an indexed photo (which is left out)."""
    page = search.page(query.k, query.offset)
    filters = access.limit(query.filters)
    hits = await run_in_threadpool(
        search.search_image, query.image, k=page.k, offset=page.offset, filters=filters, dedup=query.dedup
    )
    return search_response(search.model_key, page, hits, access)


@router.post(
    "/annotate", response_model=AnnotateResponse, openapi_extra=ANNOTATE_BODY, responses=PHOTO_QUERY_ERRORS
)
async def annotate(body: AnnotateRequestDep, captions: CaptionsDep, access: AccessDep) -> AnnotateResponse:
    """The captions that best describe an uploaded image or an indexed photo: those attached to the key's
    collections and those of the model's caption bank (its training captions), merged best first."""
    within, names = access.collection_ids, body.photo.filters.collections
    hits = await run_in_threadpool(
        lambda: captions.annotate(
            body.photo.image, k=body.photo.k, within=within, sources=body.sources, collections=names
        )
    )
    return AnnotateResponse(model=captions.model_key, captions=[AnnotationPublic.from_hit(h) for h in hits])
