"""Assembles the FastAPI app; heavy state (model, indexes) and the services load once in the lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app.api.errors import install_error_handlers
from app.api.openapi import document_limits
from app.api.routes import captions, classify, collections, health, photos, search, web
from app.core.access_log import AccessLog, configure_access_log
from app.core.auth import RequireKey
from app.core.body_limit import BodyLimit
from app.core.config import Settings, get_settings
from app.core.metrics import install_metrics
from app.services.container import build_services
from app.storage.db import make_engine, migrate, session_factory
from app.storage.stored_models import as_stored, stored_model
from models.encoder import Encoder
from models.inference import load_encoder
from models.runtime import tune_allocator


def create_app(settings: Settings | None = None, encoder: Encoder | None = None) -> FastAPI:
    settings = settings or get_settings()
    tune_allocator()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.db_url)
        await run_in_threadpool(migrate, engine)
        sessions = session_factory(engine)
        model = encoder
        started = time.perf_counter()
        if model is None:
            options = settings.inference.serving_options()
            name = await run_in_threadpool(stored_model, settings, sessions)
            model = await run_in_threadpool(
                load_encoder,
                name,
                settings.checkpoint,
                settings.device,
                settings.checkpoint_dirs,
                options,
            )
            model = await run_in_threadpool(as_stored, model, options, sessions)
        app.state.model_load_seconds = time.perf_counter() - started  # /metrics
        app.state.services = build_services(settings, model, sessions)
        yield
        engine.dispose()

    app = FastAPI(
        title="photosearch",
        summary="Private natural-language search over your own photos.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    install_metrics(app)
    for module in (search, captions, classify, photos, collections, health, web):
        app.include_router(module.router)
    api = settings.api
    # inside the access log, which then names the request's key (never its token)
    app.add_middleware(RequireKey, required=settings.auth.required)
    if api.cors_allow_origins:  # closed unless listed; outside RequireKey: preflights carry no key
        app.add_middleware(
            CORSMiddleware,
            allow_origins=api.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    app.add_middleware(BodyLimit, json_bytes=api.max_body_bytes, upload_bytes=api.max_upload_bytes)
    app.add_middleware(AccessLog)  # added last: outermost, so it sees every answer, 413s included
    configure_access_log()
    document_limits(app, api)
    return app
