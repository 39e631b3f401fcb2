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
