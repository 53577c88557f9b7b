"""Typed dependencies shared by the routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.errors import ApiError
from dunwell.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="Server API key")


# Async so that FastAPI calls them inline: a plain ``def`` dependency costs a thread hop.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def is_api_key(settings: Settings, token: str) -> bool:
    """Whether ``token`` is the server API key (constant-time)."""
    return hmac.compare_digest(token.encode(), settings.api_key.get_secret_value().encode())


async def require_api_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is None or not is_api_key(settings, credentials.credentials):
        raise ApiError(
            401,
            "invalid_api_key",
            "a valid API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )


ApiKey = Annotated[None, Depends(require_api_key)]
