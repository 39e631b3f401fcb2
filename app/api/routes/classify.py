"""Zero-shot labels: which of some label texts best fits an uploaded image or an indexed photo."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from app.api.deps import SettingsDep, read_upload
from app.services.classify import MAX_LABELS, ClassifyService
from app.services.search import ImageQuery
from models.clip.zeroshot import DEFAULT_PROMPT
from models.errors import InvalidInputError, UnsupportedMediaTypeError

router = APIRouter(prefix="/v1", tags=["classify"])

PROMPT_HELP = "How a label becomes a sentence; {} is replaced by the label."


class ClassifyByPhoto(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo_id: int = Field(description="An indexed photo to label.")
    labels: list[str] = Field(min_length=1, max_length=MAX_LABELS, examples=[["dog", "cat", "beach"]])
    prompt: str = Field(default=DEFAULT_PROMPT, description=PROMPT_HELP)


class LabelScorePublic(BaseModel):
    label: str
    probability: float = Field(description="Share of the given labels, 0..1; all add up to 1.")
    score: float = Field(description="Cosine similarity of the photo and the prompted label, -1..1.")


class ClassifyResponse(BaseModel):
    model: str
    prompt: str
    labels: list[LabelScorePublic] = Field(description="Every label, most probable first.")


CLASSIFY_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "labels"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "the image"},
                        "labels": {"type": "array", "items": {"type": "string"}, "description": "repeat"},
                        "prompt": {"type": "string", "default": DEFAULT_PROMPT},
                    },
                }
            },
            "application/json": {"schema": ClassifyByPhoto.model_json_schema()},
        },
    }
}


def get_classifier(request: Request) -> ClassifyService:
    """One service per app (it keeps label vectors), bound to the search service of the lifespan."""
    state = request.app.state
    service: ClassifyService | None = getattr(state, "classify", None)
    if service is None or service.search is not state.search:
        service = state.classify = ClassifyService(state.search)
    return service


async def classify_query(request: Request, settings: SettingsDep) -> tuple[ImageQuery, list[str], str]:
    """Multipart (`file`, repeated `labels`, optional `prompt`) or JSON {"photo_id", "labels", "prompt"}."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        data, form = await read_upload(request, settings)
        labels = [str(v) for v in form.getlist("labels")]
        prompt = str(form.get("prompt") or DEFAULT_PROMPT)
        return ImageQuery(upload=data), labels, prompt
    if content_type.startswith("application/json"):
        try:
            body = ClassifyByPhoto.model_validate(json.loads(await request.body()))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"body is not valid JSON: {exc}") from exc
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from exc
        return ImageQuery(photo_id=body.photo_id), body.labels, body.prompt
    raise UnsupportedMediaTypeError(
        f"content type {content_type or 'none'!r} not supported: send multipart/form-data with a "
        "'file' part and 'labels' fields, or application/json with photo_id and labels"
    )


ClassifierDep = Annotated[ClassifyService, Depends(get_classifier)]
ClassifyQueryDep = Annotated[tuple[ImageQuery, list[str], str], Depends(classify_query)]


@router.post("/classify", response_model=ClassifyResponse, openapi_extra=CLASSIFY_OPENAPI)
async def classify(query: ClassifyQueryDep, classifier: ClassifierDep) -> ClassifyResponse:
    """Probabilities of the given labels for a photo (zero-shot, CLIP-style), most probable first."""
    image, labels, prompt = query
    scores = await run_in_threadpool(classifier.classify, image, labels, prompt)
    return ClassifyResponse(
        model=classifier.encoder.key,
        prompt=prompt,
        labels=[LabelScorePublic(label=s.label, probability=s.probability, score=s.score) for s in scores],
    )
