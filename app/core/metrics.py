"""Prometheus metrics: requests and latency per route (fed by the access log middleware), and at each
scrape the photos and index vectors per collection, the served indexes' build time and age, and how
long the model took to load."""

from __future__ import annotations

import time
from datetime import UTC

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from app.storage.repository.status import photos_per_collection, served_builds

REQUESTS = Counter("photosearch_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "photosearch_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PHOTOS = Gauge("photosearch_photos", "Embedded photos per collection", ["collection"])
VECTORS = Gauge("photosearch_index_vectors", "Vectors in the served index", ["collection", "kind"])
BUILT = Gauge(
    "photosearch_index_built_timestamp_seconds", "When the served index was built", ["collection", "kind"]
)
AGE = Gauge("photosearch_index_age_seconds", "Age of the served index", ["collection", "kind"])
MODEL_LOAD = Gauge("photosearch_model_load_seconds", "How long the served model took to load at start-up")


def observe(method: str, route: str, status: int, seconds: float) -> None:
    LATENCY.labels(method, route).observe(seconds)
    REQUESTS.labels(method, route, str(status)).inc()


def refresh_collection_gauges(request: Request) -> None:
    services = getattr(request.app.state, "services", None)
    if services is None:  # before start-up finished
        return
    with services.search.sessions() as session:
        photos = photos_per_collection(session)
        builds = served_builds(session, model_key=services.search.model_key)
    for gauge in (PHOTOS, VECTORS, BUILT, AGE):
        gauge.clear()  # a deleted collection leaves no stale series
    for name, count in photos.items():
        PHOTOS.labels(name).set(count)
    now = time.time()
    for name, kind, vectors, built_at in builds:
        built = (built_at if built_at.tzinfo else built_at.replace(tzinfo=UTC)).timestamp()
        VECTORS.labels(name, kind).set(vectors)
        BUILT.labels(name, kind).set(built)
        AGE.labels(name, kind).set(max(0.0, now - built))
    MODEL_LOAD.set(getattr(request.app.state, "model_load_seconds", 0.0))


def install_metrics(app: FastAPI) -> None:
    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        """Admin keys only when auth is on (app/core/auth.py)."""
        refresh_collection_gauges(request)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
