"""Text→photo, photo→photo and photo→caption search."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import IMAGE_QUERY_OPENAPI, ImageQueryDep, SearchDep
from app.schemas import (
    AnnotateResponse,
    CaptionHitPublic,
    PhotoHitPublic,
    PhotoPublic,
    SearchResponse,
    TextSearch,
)
from app.services.search import PhotoHit

router = APIRouter(prefix="/v1", tags=["search"])


def _response(service_model: str, k: int, offset: int, hits: list[PhotoHit]) -> SearchResponse:
    return SearchResponse(
        model=service_model,
        k=k,
        offset=offset,
        hits=[
            PhotoHitPublic(
                score=h.score,
                rerank_score=h.rerank_score,
                rank_score=h.rank_score,
                photo=PhotoPublic.from_row(h.photo),
            )
            for h in hits
        ],
    )


@router.post("/search/text", response_model=SearchResponse)
def search_text(body: TextSearch, search: SearchDep) -> SearchResponse:
    """Photos that best match a description."""
    hits = search.search_text(
        body.query,
        k=body.k,
        offset=body.offset,
        min_score=body.min_score,
        collections=body.collections,
        tags=body.tags,  # zero-shot tags filter (issue 4)
    )
    return _response(search.encoder.key, body.k, body.offset, hits)


@router.post("/search/image", response_model=SearchResponse, openapi_extra=IMAGE_QUERY_OPENAPI)
async def search_image(query: ImageQueryDep, search: SearchDep) -> SearchResponse:
    """Photos that look like an uploaded image, or like an indexed photo (which is left out)."""
    image, _, params = query
    hits = await run_in_threadpool(lambda: search.search_image(image, **params))
    return _response(search.encoder.key, params["k"], params["offset"], hits)


@router.post("/annotate", response_model=AnnotateResponse, openapi_extra=IMAGE_QUERY_OPENAPI)
async def annotate(query: ImageQueryDep, search: SearchDep) -> AnnotateResponse:
    """The known captions that best describe an uploaded image or an indexed photo."""
    image, _, params = query
    hits = await run_in_threadpool(lambda: search.annotate(image, k=params["k"]))
    return AnnotateResponse(
        model=search.encoder.key,
        captions=[CaptionHitPublic.from_row(h.caption, h.score, h.rank_score) for h in hits],
    )
