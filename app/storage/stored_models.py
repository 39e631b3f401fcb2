"""The model as the store already holds it: the serving choices follow the photo vectors on record."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.storage.repository import vector_counts_by_model
from models.encoder import Encoder
from models.inference import ServingOptions, follow_stored


def as_stored(encoder: Encoder, options: ServingOptions, sessions: sessionmaker[Session]) -> Encoder:
    """The encoder switched to the preset and precision the store's vectors of these weights were
    embedded with, when the settings leave both to their defaults (models/inference.py follow_stored)."""
    if options.preset is not None or options.quantize != "auto":
        return encoder
    prefix = f"{encoder.name}@{encoder.checkpoint_digest[:12]}"
    with sessions() as session:
        stored = vector_counts_by_model(session, key_prefix=prefix)
    return follow_stored(encoder, options, stored)


def not_indexed_reason(encoder: Encoder, sessions: sessionmaker[Session]) -> str:
    """Why nothing is served for this encoder's key, and what to do: index, or, when the store holds
    these weights embedded another way (indexed after this server started, say by a GPU or Ray run),
    restart to follow them or set the preset and quantize to match."""
    prefix = f"{encoder.name}@{encoder.checkpoint_digest[:12]}"
    with sessions() as session:
        stored = vector_counts_by_model(session, key_prefix=prefix)
    others = sorted(((count, key) for key, count in stored.items() if key != encoder.key), reverse=True)
    if not others:
        return "nothing is indexed for this model yet: run `photosearch index PATH`"
    count, key = others[0]
    return (
        f"nothing is indexed as {encoder.key}, but {count:,} photos are embedded as {key} (the same weights, "
        "another preset or precision): restart the server to serve them, or set "
        "PHOTOSEARCH_INFERENCE__PRESET and __QUANTIZE to match"
    )
