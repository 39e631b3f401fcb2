"""One log line per request (logger `photosearch.access`): method, route template, status, latency.

It replaces uvicorn's access log (`photosearch serve` turns that off), logs the route template rather
than the path so that ids do not fill the log, and feeds the Prometheus metrics from the same figures."""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.metrics import observe

log = logging.getLogger("photosearch.access")
# A request id a proxy sent is kept when it cannot forge a log line; otherwise a new one is made.
CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


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
    """The matched route's template (/v1/photos/{photo_id}); None when no route matched. FastAPI's
    own pages (/docs, /openapi.json) leave no route in the scope: they are matched here again."""
    template = getattr(scope.get("route"), "path", None)
    if isinstance(template, str):
        return template
    for route in getattr(scope.get("app"), "routes", ()):
        if route.matches(scope)[0] is Match.FULL:
            path = getattr(route, "path", None)
            return path if isinstance(path, str) else None
    return None


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() == b"x-request-id":
            sent = value.decode("latin-1")
            if CLIENT_REQUEST_ID.fullmatch(sent):
                return sent
    return uuid.uuid4().hex


def key_name(scope: Scope) -> str:
    """The name of the request's API key (set by app/core/auth.py), "-" for none; never the token."""
    access = scope.get("photosearch.access")
    name = getattr(access, "key_name", None)
    return name if isinstance(name, str) else "-"


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
        rid = request_id(scope)

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            seconds = time.perf_counter() - started
            method, template = scope["method"], route_template(scope)
            observe(method, template or "unmatched", status, seconds)
            path = template or raw_path(scope)
            fields = {"method": method, "route": path, "status": status, "ms": round(seconds * 1000, 1)}
            fields |= {"key": key_name(scope), "request_id": rid}
            log.info(
                "%s %s %d %.1f ms key=%s id=%s",
                method,
                path,
                status,
                seconds * 1000,
                fields["key"],
                rid,
                extra={"request": fields},  # JSON logs (cli/logs.py) carry these as fields
            )
