"""Typed dependencies: the services built in the lifespan, the settings, and parsed request bodies."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.bodies import ClassifyRequest, ImageRequest, classify_request, image_request
from app.core.auth import access_of
from app.core.config import Settings
from app.services.access import AccessScope
from app.services.captions import CaptionService
from app.services.classify import ClassifyService
from app.services.container import Services
from app.services.photos import PhotoService
from app.services.search import SearchService


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_access(request: Request) -> AccessScope:
    """The request's API key scope, set by the RequireKey middleware (app/core/auth.py)."""
    return access_of(request.scope)


ServicesDep = Annotated[Services, Depends(get_services)]
AccessDep = Annotated[AccessScope, Depends(get_access)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


def get_search(services: ServicesDep) -> SearchService:
    return services.search


def get_captions(services: ServicesDep) -> CaptionService:
    return services.captions


def get_classify(services: ServicesDep) -> ClassifyService:
    return services.classify


def get_photos(services: ServicesDep) -> PhotoService:
    return services.photos


async def get_image_request(request: Request, settings: SettingsDep) -> ImageRequest:
    return await image_request(request, settings)


async def get_classify_request(request: Request, settings: SettingsDep) -> ClassifyRequest:
    return await classify_request(request, settings)


SearchDep = Annotated[SearchService, Depends(get_search)]
CaptionsDep = Annotated[CaptionService, Depends(get_captions)]
ClassifyDep = Annotated[ClassifyService, Depends(get_classify)]
PhotosDep = Annotated[PhotoService, Depends(get_photos)]
ImageRequestDep = Annotated[ImageRequest, Depends(get_image_request)]
ClassifyRequestDep = Annotated[ClassifyRequest, Depends(get_classify_request)]
