"""The OpenAPI document: request bodies of the routes that take an upload or JSON, and the limits that
come from settings written in at app creation, so the document states what this server accepts."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.core.config import ApiSettings
from app.schemas import AnnotateByPhoto, ClassifyByPhoto, PhotoIdQuery
from models.zero_shot import DEFAULT_PROMPT

TEXT_LIST: dict[str, Any] = {"type": "array", "items": {"type": "string"}, "description": "repeat the field"}


def _upload_body(fields: dict[str, Any], required: list[str], json_schema: dict[str, Any]) -> dict[str, Any]:
    upload = {"type": "string", "format": "binary", "description": "the image"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", *required],
                        "properties": {"file": upload, **fields},
                    }
                },
                "application/json": {"schema": json_schema},
            },
        }
    }


TAKEN_BOUND = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}]}
IMAGE_QUERY_BODY = _upload_body(
    {
        "k": {"type": "integer", "minimum": 1},
        "offset": {"type": "integer", "minimum": 0, "default": 0},
        "min_score": {"type": "number", "minimum": -1, "maximum": 1},
        "collections": TEXT_LIST,
        "tags": TEXT_LIST,
        "taken_after": TAKEN_BOUND,
        "taken_before": TAKEN_BOUND,
        "folders": TEXT_LIST,
        "cameras": TEXT_LIST,
        "sort": {"type": "string", "enum": ["relevance", "newest", "oldest"], "default": "relevance"},
        "dedup": {"type": "boolean", "default": True, "description": "near-identical photos as one hit"},
    },
    [],
    PhotoIdQuery.model_json_schema(),
)
ANNOTATE_BODY = _upload_body(
    {
        "k": {"type": "integer", "minimum": 1},
        "collections": TEXT_LIST,
        "sources": {
            "type": "array",
            "items": {"type": "string", "enum": ["collection", "model"]},
            "description": "repeat the field; default both",
        },
    },
    [],
    AnnotateByPhoto.model_json_schema(),
)
CLASSIFY_BODY = _upload_body(
    {"labels": TEXT_LIST, "prompt": {"type": "string", "default": DEFAULT_PROMPT}},
    ["labels"],
    ClassifyByPhoto.model_json_schema(),
)


# Text the services accept: at least one letter or digit (so not empty once whitespace is collapsed)
# and no NUL. Stricter than the checks themselves, so that what the document calls valid is accepted.
WORDS = "^[^\\x00]*[A-Za-z0-9][^\\x00]*$"
NO_NUL = "^[^\\x00]*$"
PROMPT = "^[^{}\\x00]*\\{\\}[^{}\\x00]*$"  # {} exactly once, where the label goes


REQUEST_SCHEMAS = frozenset(
    {"TextSearch", "PhotoIdQuery", "AnnotateByPhoto", "ClassifyByPhoto", "CaptionSearch"}
)


def limit_properties(api: ApiSettings) -> dict[str, dict[str, Any]]:
    """Schema property name → the bounds settings and the services' checks give it."""
    label = {"type": "string", "minLength": 1, "maxLength": api.max_prompt_chars, "pattern": WORDS}
    return {
        "k": {"minimum": 1, "maximum": api.max_k, "default": api.default_k},
        "offset": {"minimum": 0, "maximum": api.max_offset, "default": 0},
        "query": {"minLength": 1, "maxLength": api.max_query_chars, "pattern": WORDS},
        "labels": {"minItems": 1, "maxItems": api.max_labels, "items": label},
        "prompt": {"maxLength": api.max_prompt_chars, "pattern": PROMPT},
        "collections": {"items": {"type": "string", "pattern": NO_NUL}},
        "tags": {"items": {"type": "string", "pattern": NO_NUL}},
        "folders": {"items": {"type": "string", "pattern": NO_NUL}},
        "cameras": {"items": {"type": "string", "pattern": NO_NUL}},
    }


def _constrain(field: dict[str, Any], bounds: dict[str, Any]) -> None:
    """Bounds onto a property; for an optional one (anyOf [..., null]) onto its non-null form, the
    default staying on the property itself."""
    bounds = dict(bounds)
    if "default" in bounds:
        field["default"] = bounds.pop("default")
    forms = [f for f in field.get("anyOf", [field]) if f.get("type") != "null"]
    for form in forms:
        form.update(bounds)


def _apply_limits(node: Any, limits: dict[str, dict[str, Any]]) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, bounds in limits.items():
                if isinstance(properties.get(name), dict):
                    _constrain(properties[name], bounds)
        for value in node.values():
            _apply_limits(value, limits)
    elif isinstance(node, list):
        for value in node:
            _apply_limits(value, limits)


def document_limits(app: FastAPI, api: ApiSettings) -> None:
    """Build the app's OpenAPI document now (every route is in place) and write the limits into the
    request schemas (named ones and the bodies written inline); FastAPI keeps serving the document."""
    document = app.openapi()
    limits = limit_properties(api)
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        if name in REQUEST_SCHEMAS:
            _apply_limits(schema, limits)
    for operation in (op for path in document["paths"].values() for op in path.values()):
        _apply_limits(operation.get("requestBody", {}), limits)
        for parameter in operation.get("parameters", []):  # query parameters (GET /v1/photos)
            if parameter.get("in") == "query" and parameter.get("name") in limits:
                _constrain(parameter["schema"], limits[parameter["name"]])
