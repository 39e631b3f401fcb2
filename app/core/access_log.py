"""One log line per request (logger `photosearch.access`): method, route template, status, latency.

It replaces uvicorn's access log (`photosearch serve` turns that off), logs the route template rather
than the path so that ids do not fill the log, and feeds the Prometheus metrics from the same figures."""

from __future__ import annotations

import logging
import sys
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import observe

log = logging.getLogger("photosearch.access")


def configure_access_log() -> None:
    """Lines reach stderr at INFO unless logging was configured already: `photosearch serve` sets up
    its own handlers (a second one here would print every line twice), a bare uvicorn only its own
    loggers. A level set for this logger is kept, so that it can be quietened."""
    if not log.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        log.addHandler(handler)
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)


def route_template(scope: Scope) -> str | None:
    """The matched route's template (/v1/photos/{photo_id}); None when no route matched."""
    template = getattr(scope.get("route"), "path", None)
    return template if isinstance(template, str) else None


def raw_path(scope: Scope) -> str:
    """The path as sent (percent-encoded), so that no byte of it can forge a log line."""
    raw: bytes = scope.get("raw_path") or scope.get("path", "").encode()
    return raw.decode("ascii", "backslashreplace")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before responding

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            seconds = time.perf_counter() - started
            method, template = scope["method"], route_template(scope)
            observe(method, template or "unmatched", status, seconds)
            log.info("%s %s %d %.1f ms", method, template or raw_path(scope), status, seconds * 1000)
