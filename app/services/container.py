"""Every service of the app, built once from the heavy state (settings, model, database)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings
from app.services.captions import CaptionService
from app.services.classify import ClassifyService
from app.services.keys import KeyService
from app.services.model_captions import ModelCaptions
from app.services.photos import PhotoService
from app.services.search import SearchService
from models.encoder import Encoder


@dataclass(frozen=True)
class Services:
    search: SearchService
    captions: CaptionService
    classify: ClassifyService
    photos: PhotoService
    keys: KeyService


def build_services(settings: Settings, encoder: Encoder, sessions: sessionmaker[Session]) -> Services:
    """The services share one model, one set of served indexes and one bound on heavy work."""
    search = SearchService(settings, encoder, sessions)
    model_captions = ModelCaptions(encoder, settings.caches, search.gate, settings.api.busy_wait_s)
    model_captions.preload()
    return Services(
        search=search,
        captions=CaptionService(search, model_captions),
        classify=ClassifyService(search.vectors, settings.api),
        photos=PhotoService(settings, sessions, search.gate),
        keys=KeyService(sessions, settings.auth.cache_seconds),
    )
