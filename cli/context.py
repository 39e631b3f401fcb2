"""Opening the heavy pieces from settings, for commands that run without a server."""

from __future__ import annotations

import tempfile

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.search import SearchService
from app.storage.db import make_engine, migrate, session_factory
from models.encoder import Encoder
from models.errors import NotReadyError
from models.registry import create_encoder


def prepare_data_dir(settings: Settings) -> None:
    """Create the data folder (SQLite database, index files) and prove it can be written, so that a
    folder the user cannot write is named with the setting that moves it, not met as a traceback
    halfway through a command."""
    folder = settings.data_dir
    try:
        settings.index_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise NotReadyError(
            f"cannot write the data folder {folder} ({reason}): set PHOTOSEARCH_DATA_DIR to a folder "
            "you can write"
        ) from exc


def open_sessions(settings: Settings) -> sessionmaker[Session]:
    prepare_data_dir(settings)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return session_factory(engine)


def open_encoder(settings: Settings) -> Encoder:
    return create_encoder(settings.model, settings.checkpoint, settings.device)


def open_service(settings: Settings) -> SearchService:
    # The database first: a wrong URL or folder is reported before seconds of model loading.
    sessions = open_sessions(settings)
    return SearchService(settings, open_encoder(settings), sessions)
