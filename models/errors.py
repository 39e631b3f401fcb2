"""Every error photosearch raises on purpose derives from PhotoSearchError.

The root lives in `models` because every other package imports it. Each kind says what went wrong
for the caller, and is mapped in one place to an HTTP status (app/api/errors.py) and in one place to
a one-line CLI message with exit code 2 (cli/main.py). A message says what was wrong and what
would be right. Kinds also derive from the builtin exception a caller would expect (ValueError,
LookupError, ...), so generic handlers keep working.
"""

from __future__ import annotations


class PhotoSearchError(Exception):
    """The root; the message is shown to the caller as is."""


class InvalidInputError(PhotoSearchError, ValueError):
    """Well-formed but unusable input: a query, a file, a config, a data set (HTTP 422)."""


class NotFoundError(PhotoSearchError, LookupError):
    """An id, name, model, weights file or folder that does not exist (HTTP 404)."""


class ModelNotFoundError(NotFoundError):
    """Unknown model name or missing weights; the message lists what exists and where we looked."""


class PayloadTooLargeError(InvalidInputError):
    """A request body or upload over its configured limit (HTTP 413)."""


class UnsupportedMediaTypeError(InvalidInputError):
    """A request body of a content type the route does not take (HTTP 415)."""


class NotReadyError(PhotoSearchError, RuntimeError):
    """Nothing indexed yet for the served model, an index file unreadable, a database unreachable
    (HTTP 503)."""


class TooBusyError(PhotoSearchError, RuntimeError):
    """The server is at its limit of concurrent heavy work; the caller may retry later (HTTP 429)."""
