"""Logging for the CLI and the server it runs: photosearch's own lines, other libraries only when they warn.

Third-party libraries announce routine start-up at INFO (FAISS probing for CPU builds it does not
have, Alembic's migration context, sentence-transformers' model path) and transformers draws a
weight-loading bar; on every command these read like failures. By default photosearch's loggers
and uvicorn's start/stop lines stay at INFO and everything else at WARNING; `--verbose` shows all of
it at DEBUG.
"""

from __future__ import annotations

import logging
import os
import sys
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


def stderr_handler() -> logging.Handler:
    """Rich's handler on a terminal; one plain line a record otherwise, so that a log file or a
    process supervisor gets exactly one line a message (Rich wraps long ones to the console width)."""
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
