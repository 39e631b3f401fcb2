"""Opening the heavy pieces from settings, for commands that run without a server."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.search import SearchService
from app.storage.db import make_engine, migrate, session_factory
from app.storage.stored_models import as_stored, stored_model
from models.encoder import Encoder
from models.errors import NotReadyError
from models.inference import load_encoder
from models.registry import load_model_config
from models.runtime import resolve_device


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


def open_database(settings: Settings) -> Engine:
    """The database at the newest schema, in a data folder that can be written."""
    prepare_data_dir(settings)
    engine = make_engine(settings.db_url)
    migrate(engine)
    return engine


def open_sessions(settings: Settings) -> sessionmaker[Session]:
    return session_factory(open_database(settings))


def open_encoder(
    settings: Settings, sessions: sessionmaker[Session] | None = None, indexing: bool = False
) -> Encoder:
    """The model as the settings serve it; with `sessions`, the model, preset and precision the store's
    vectors were embedded with when the settings leave those to their defaults (stored_model,
    as_stored). indexing:
    ONNX Runtime's threads yield the cores to the decoding workers when idle instead of spinning, and
    the text tower is exported and opened only if the run embeds captions (the caption bank)."""
    options = replace(settings.inference.serving_options(), spin=not indexing, lazy_text=indexing)
    name = settings.model if sessions is None else stored_model(settings, sessions)
    encoder = load_encoder(name, settings.checkpoint, settings.device, settings.checkpoint_dirs, options)
    return encoder if sessions is None else as_stored(encoder, options, sessions)


def open_service(settings: Settings) -> SearchService:
    # The database first: a wrong URL or folder is reported before seconds of model loading.
    sessions = open_sessions(settings)
    return SearchService(settings, open_encoder(settings, sessions), sessions)


def check_before_serving(settings: Settings) -> None:
    """The server would meet these in its start-up and log a traceback before exiting; checked here
    they are one line and exit code 2: the model name, the device, the data folder, the database
    (its migrations, which start-up would run anyway)."""
    model = settings.model
    if not model.startswith("local-dir:") and not Path(model).exists():
        load_model_config(model)
    resolve_device(settings.device)
    open_database(settings).dispose()
