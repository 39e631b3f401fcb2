"""Caption→caption search: the known captions nearest to a text query, each with its photo's id.

With a caption-only model (joint-bow-captions) this is how photos are found through their captions;
it works with any served model, since every indexed caption is embedded with it."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import AccessDep, CaptionsDep
from app.api.errors import error_responses
from app.schemas import CaptionHitPublic, CaptionSearch, CaptionSearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


@router.post(
    "/search/captions",
    response_model=CaptionSearchResponse,
    responses=error_responses(400, 413, 422, 429, 503),
)
def search_captions(body: CaptionSearch, captions: CaptionsDep, access: AccessDep) -> CaptionSearchResponse:
    """The known captions closest in meaning to the query, best first, with their photo ids."""
    page = captions.page(body.k)
    hits = captions.search_captions(body.query, k=page.k, within=access.collection_ids)
    return CaptionSearchResponse(
        model=captions.model_key,
        k=page.k,
        captions=[CaptionHitPublic.from_hit(h) for h in hits],
    )
