"""The OpenAPI document: request bodies of the routes that take an upload or JSON, and the limits that
come from settings written in at app creation, so the document states what this server accepts."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from app.core.config import ApiSettings
from app.schemas import ClassifyByPhoto, PhotoIdQuery
from models.clip.zeroshot import DEFAULT_PROMPT

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


IMAGE_QUERY_BODY = _upload_body(
    {
        "k": {"type": "integer", "minimum": 1},
        "offset": {"type": "integer", "minimum": 0, "default": 0},
        "min_score": {"type": "number", "minimum": -1, "maximum": 1},
        "collections": TEXT_LIST,
        "tags": TEXT_LIST,
    },
    [],
    PhotoIdQuery.model_json_schema(),
)
CLASSIFY_BODY = _upload_body(
    {"labels": TEXT_LIST, "prompt": {"type": "string", "default": DEFAULT_PROMPT}},
    ["labels"],
    ClassifyByPhoto.model_json_schema(),
)


def limit_properties(api: ApiSettings) -> dict[str, dict[str, Any]]:
    """Schema property name → the bounds settings give it."""
    return {
        "k": {"type": "integer", "minimum": 1, "maximum": api.max_k, "default": api.default_k},
        "offset": {"type": "integer", "minimum": 0, "maximum": api.max_offset, "default": 0},
        "labels": {"maxItems": api.max_labels},
        "prompt": {"maxLength": api.max_prompt_chars},
    }


def _apply_limits(node: Any, limits: dict[str, dict[str, Any]]) -> None:
    if isinstance(node, dict):
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, bounds in limits.items():
                if isinstance(properties.get(name), dict):
                    field = properties[name]
                    if "anyOf" in field and "maxItems" not in bounds and "maxLength" not in bounds:
                        field.pop("anyOf")  # k: null means the default; documented as that default
                    field.update(bounds)
        for value in node.values():
            _apply_limits(value, limits)
    elif isinstance(node, list):
        for value in node:
            _apply_limits(value, limits)


def document_limits(app: FastAPI, api: ApiSettings) -> None:
    """Build the app's OpenAPI document now (every route is in place) and write the settings' limits
    into every schema that has those fields; FastAPI keeps serving the stored document."""
    _apply_limits(app.openapi(), limit_properties(api))
