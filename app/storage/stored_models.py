"""The model as the store already holds it: the serving choices follow the photo vectors on record."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.storage.repository import vector_counts_by_model
from models.encoder import Encoder
from models.inference import ServingOptions, follow_stored


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
        return "nothing is indexed for this model yet: run `photosearch index PATH`"
    count, key = others[0]
    return (
        f"nothing is indexed as {encoder.key}, but {count:,} photos are embedded as {key} (the same weights, "
        "another preset or precision): restart the server to serve them, or set "
        "PHOTOSEARCH_INFERENCE__PRESET and __QUANTIZE to match"
    )
