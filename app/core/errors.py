"""Domain errors. Services raise these; app/api/errors.py maps them to HTTP in one place."""


class PhotoSearchError(Exception):
    """Base class; the message is shown to the caller as is."""


class InvalidInputError(PhotoSearchError):
    """The request is well-formed but its content cannot be used (→ 422)."""


class NotFoundError(PhotoSearchError):
    """An id or file that does not exist (→ 404)."""


class PayloadTooLargeError(PhotoSearchError):
    """An upload over the configured limit (→ 413)."""


class NotReadyError(PhotoSearchError):
    """Nothing indexed yet for the served model, or the model is not loaded (→ 503)."""
