"""Zero-shot labels: which of some label texts best fits an uploaded image or an indexed photo."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from app.api.deps import AccessDep, ClassifyDep, ClassifyRequestDep
from app.api.errors import error_responses
from app.api.openapi import CLASSIFY_BODY
from app.schemas import ClassifyResponse, LabelScorePublic

router = APIRouter(prefix="/v1", tags=["classify"])


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    openapi_extra=CLASSIFY_BODY,
    responses=error_responses(400, 404, 413, 415, 422, 429),
)
async def classify(query: ClassifyRequestDep, classifier: ClassifyDep, access: AccessDep) -> ClassifyResponse:
    """Probabilities of the given labels for a photo (zero-shot, CLIP-style), most probable first."""
    scores = await run_in_threadpool(
        classifier.classify, query.image, query.labels, query.prompt, access.collection_ids
    )
    return ClassifyResponse(
        model=classifier.model_key,
        prompt=query.prompt,
        labels=[LabelScorePublic(label=s.label, probability=s.probability, score=s.score) for s in scores],
    )
