"""The model as the store already holds it: the serving choices follow the photo vectors on record."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.storage.repository import vector_counts_by_model
from models.encoder import Encoder
from models.inference import ServingOptions, follow_stored
from models.registry import EARLIER_DEFAULTS, weights_key_of

log = logging.getLogger(__name__)


def stored_model(settings: Settings, sessions: sessionmaker[Session]) -> str:
    """The model to load: the one the settings name; but when they leave the model to its default and
    the store holds no photo vectors of the default's weights and some of a model shipped as the default
    before, that one, so an upgrade never leaves a library unsearchable or re-embeds it unasked.
    `photosearch index PATH --model joint-default` moves a library to the new default."""
    if "model" in settings.model_fields_set or settings.checkpoint is not None:
        return settings.model
    dirs = settings.checkpoint_dirs
    with sessions() as session:

        def photos_of(name: str) -> int:
            key = weights_key_of(name, dirs)
            return sum(vector_counts_by_model(session, key_prefix=key).values()) if key else 0

        if photos_of(settings.model):
            return settings.model
        for name in EARLIER_DEFAULTS:
            if count := photos_of(name):
                log.warning(
                    "the store's %d photo vectors were embedded by %s, shipped as the default before, and "
                    "none by %s: serving %s. To search with %s, re-index each folder with `photosearch "
                    "index PATH --model %s` and restart (or set PHOTOSEARCH_MODEL=%s to keep it)",
                    count, name, settings.model, name, settings.model, settings.model, name,
                )  # fmt: skip
                return name
    return settings.model


def as_stored(encoder: Encoder, options: ServingOptions, sessions: sessionmaker[Session]) -> Encoder:
    """The encoder switched to the preset and precision the store's vectors of these weights were
    embedded with, when the settings leave both to their defaults (models/inference.py follow_stored)."""
    if not options.follows_store:  # no query needed
        return encoder
    return follow_stored(encoder, options, stored_ways(encoder, sessions))


def stored_ways(encoder: Encoder, sessions: sessionmaker[Session]) -> dict[str, int]:
    """Photo vectors per model key of these weights, whatever preset or precision embedded them."""
    with sessions() as session:
        return vector_counts_by_model(session, key_prefix=encoder.weights_key)


def not_indexed_reason(encoder: Encoder, sessions: sessionmaker[Session]) -> str:
    """Why nothing is served for this encoder's key, and what to do: index, or, when the store holds
    these weights embedded another way (indexed after this server started, say by a GPU or Ray run),
    restart to follow them or set the preset and quantize to match."""
    stored = stored_ways(encoder, sessions)
    others = sorted(((count, key) for key, count in stored.items() if key != encoder.key), reverse=True)
    if not others:
        with sessions() as session:
            elsewhere = sorted(
                ((c, k) for k, c in vector_counts_by_model(session, key_prefix="").items()), reverse=True
            )
        if elsewhere:
            count, key = elsewhere[0]
            return (
                f"nothing is indexed as {encoder.key} yet, but {count:,} photos are embedded by other "
                f"weights ({key}): run `photosearch index PATH` to embed them with this model, or serve "
                "the model that embedded them (PHOTOSEARCH_MODEL)"
            )
        return "nothing is indexed for this model yet: run `photosearch index PATH`"
    count, key = others[0]
    return (
        f"nothing is indexed as {encoder.key}, but {count:,} photos are embedded as {key} (the same weights, "
        "another preset or precision): restart the server to serve them, or set "
        "PHOTOSEARCH_INFERENCE__PRESET and __QUANTIZE to match"
    )
