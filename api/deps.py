"""Typed dependencies shared by the routes, the API-key guards among them.

Two roles hold API keys (``dunwell.api_keys``): the SaaS backend's server keys and
ops's keys. ``ServerKey`` guards the server API: a server key may do everything there;
an ops key may read (GET) but not write, so ops can look a customer up without being
able to act as the SaaS backend (create customers, subscriptions, portal sessions).
``OpsKey`` guards ``/v1/ops/...``: only an ops key; a server key is refused with 403
``ops_key_required`` before anything runs, so a leaked backend key cannot reach
write-offs, refunds or the ledger. Both return the ``Principal`` (the key's id is the
actor in the audit log).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from api.errors import ApiError
from dunwell.api_keys import Principal, Role
from dunwell.settings import Settings

# Two schemes, so the OpenAPI document shows which key a route needs (the server
# routes' writes answer an ops key 403 server_key_required; docs/security.md).
_server_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ServerKey",
    description="Server API key",
)
_ops_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="OpsKey",
    description="Ops API key",
)

_READS = frozenset({"GET", "HEAD"})


# Async so that FastAPI calls them inline: a plain ``def`` dependency costs a thread hop.
async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]


def identify(settings: Settings, token: str) -> Principal | None:
    """The key ``token`` is, of either role, or None (constant-time per key)."""
    return settings.key_ring().identify(token)


def _invalid_key() -> ApiError:
    return ApiError(
        401,
        "invalid_api_key",
        "a valid API key is required (Authorization: Bearer <key>)",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _principal(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    principal = None if credentials is None else identify(settings, credentials.credentials)
    if principal is None:
        raise _invalid_key()
    return principal


async def require_server_key(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_server_bearer)],
) -> Principal:
    principal = _principal(settings, credentials)
    if principal.role is Role.OPS and request.method not in _READS:
        raise ApiError(
            403,
            "server_key_required",
            "an ops key may read the server API but not write through it; use a server API key",
        )
    return principal


async def require_ops_key(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_ops_bearer)],
) -> Principal:
    principal = _principal(settings, credentials)
    if principal.role is not Role.OPS:
        raise ApiError(
            403,
            "ops_key_required",
            "this is an ops route; a server API key never reaches it (use an ops key)",
        )
    return principal


ServerKey = Annotated[Principal, Depends(require_server_key)]
OpsKey = Annotated[Principal, Depends(require_ops_key)]
