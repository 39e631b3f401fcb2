"""API keys on every request (ASGI middleware): `Authorization: Bearer <token>` or `X-API-Key`.

Every route but liveness, readiness and the web page's static files needs a valid key when
auth.required is on; /metrics needs an admin key. The request's AccessScope is left in the ASGI scope
for the routes (app/api/deps.py) and the access log (which names the key, never the token)."""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from app.services.access import OPEN_SCOPE, AccessScope
from app.services.keys import KeyService

SCOPE_KEY = "photosearch.access"
OPEN_PATHS = frozenset({"/health", "/ready", "/", "/web/app.js", "/web/style.css"})
ADMIN_PATHS = frozenset({"/metrics"})
NOTHING = AccessScope(collection_ids=frozenset())  # what a route sees if no scope was set


class MalformedCredentials(ValueError):
    pass


def request_token(scope: Scope) -> str | None:
    """The token a request sends; None when it sends none; MalformedCredentials for a header that is
    neither `Bearer <token>` nor a plain X-API-Key value."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    if b"authorization" in headers:
        scheme, _, token = headers[b"authorization"].decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
            raise MalformedCredentials("send the key as `Authorization: Bearer <key>`")
        return token.strip()
    if b"x-api-key" in headers:
        token = headers[b"x-api-key"].decode("latin-1").strip()
        if not token or " " in token:
            raise MalformedCredentials("send the key as `X-API-Key: <key>`")
        return token
    return None


def access_of(scope: Scope) -> AccessScope:
    found = scope.get(SCOPE_KEY)
    return found if isinstance(found, AccessScope) else NOTHING


async def refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, ensure_ascii=True).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="photosearch"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequireKey:
    def __init__(self, app: ASGIApp, required: bool) -> None:
        self.app = app
        self.required = required

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.required:
            scope[SCOPE_KEY] = OPEN_SCOPE
            await self.app(scope, receive, send)
            return
        try:
            token = request_token(scope)
        except MalformedCredentials as exc:
            await refuse(send, 401, f"malformed credentials: {exc}")
            return
        if token is None:
            await refuse(send, 401, "an API key is required: send `Authorization: Bearer <key>`")
            return
        keys: KeyService = scope["app"].state.services.keys
        # a key seen within auth.cache_seconds is answered on the event loop; others go to SQL in a thread
        access = keys.cached_scope(token) or await run_in_threadpool(keys.scope_for, token)
        if access is None:
            await refuse(send, 401, "unknown or revoked API key")
            return
        scope[SCOPE_KEY] = access
        if scope["path"] in ADMIN_PATHS and not access.admin:
            await refuse(send, 403, "this endpoint needs an admin key")
            return
        await self.app(scope, receive, send)
