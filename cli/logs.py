"""Logging for the CLI and the server it runs: photosearch's own lines, other libraries only when they warn.

Third-party libraries announce routine start-up at INFO (FAISS probing for CPU builds it does not
have, Alembic's migration context, sentence-transformers' model path) and transformers draws a
weight-loading bar; on every command these read like failures. By default photosearch's loggers
and uvicorn's start/stop lines stay at INFO and everything else at WARNING; `--verbose` shows all of
it at DEBUG.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.logging import RichHandler

# Loggers named by module (`logging.getLogger(__name__)`) in each package, the server's access log
# (`photosearch.access`), and uvicorn's own start/stop/error lines.
OWN_LOGGERS = ("app", "cli", "indexer", "models", "photosearch", "uvicorn.error")
ACCESS_LOGGER = "photosearch.access"


class CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes, not what it was when logging was set
    up: a test runner that swaps stderr for one command and closes it afterwards leaves no handler
    writing to a closed stream."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


LOG_FORMAT_VARIABLE = "PHOTOSEARCH_LOG_FORMAT"  # "json": one JSON object a line, for log collectors


class JsonLines(logging.Formatter):
    """time, level, logger, message, the access log's request fields, and an exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request = getattr(record, "request", None)
        if isinstance(request, dict):
            line |= request
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=True, default=str)


def stderr_handler() -> logging.Handler:
    """Rich's handler on a terminal; one plain line a record otherwise, so that a log file or a
    process supervisor gets exactly one line a message (Rich wraps long ones to the console width);
    one JSON object a line with PHOTOSEARCH_LOG_FORMAT=json."""
    if os.environ.get(LOG_FORMAT_VARIABLE, "").lower() == "json":
        handler = CurrentStderrHandler()
        handler.setFormatter(JsonLines())
        return handler
    if sys.stderr.isatty():
        return RichHandler(console=Console(stderr=True), show_path=False)
    handler = CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def logging_config(verbose: bool) -> dict[str, Any]:
    """A `logging.config.dictConfig` dictionary; also uvicorn's `log_config`, so that its worker
    processes log the same way."""
    own_level = "DEBUG" if verbose else "INFO"
    loggers: dict[str, dict[str, Any]] = {name: {"level": own_level} for name in OWN_LOGGERS}
    # Given its handler here: the app adds one of its own to a handler-less access logger (for servers
    # that configure no logging), and the line would then also propagate to ours, printed twice.
    loggers[ACCESS_LOGGER] = {"level": own_level, "handlers": ["stderr"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"stderr": {"()": f"{__name__}.stderr_handler"}},
        "root": {"level": "DEBUG" if verbose else "WARNING", "handlers": ["stderr"]},
        "loggers": loggers,
    }


def hide_library_chatter(verbose: bool) -> None:
    """Progress bars and log levels of the Hugging Face libraries are read from the environment when
    they are first imported, which is after this runs (the CLI imports them lazily); worker
    processes inherit the environment. A value the user set is kept."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "0" if verbose else "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "debug" if verbose else "warning")
