"""Opening the heavy pieces from settings, for commands that run without a server."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.search import SearchService
from app.storage.db import make_engine, migrate, session_factory
from models.encoder import Encoder
from models.registry import create_encoder


def open_sessions(settings: Settings) -> sessionmaker[Session]:
    engine = make_engine(settings.db_url)
    migrate(engine)
    return session_factory(engine)


def open_encoder(settings: Settings) -> Encoder:
    return create_encoder(settings.model, settings.checkpoint, settings.device)


def open_service(settings: Settings) -> SearchService:
    return SearchService(settings, open_encoder(settings), open_sessions(settings))
