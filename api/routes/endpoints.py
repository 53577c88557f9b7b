"""Server API (API key): endpoints that receive Dunwell's signed events.

Register a URL with the event types it wants (the generated secret is in the answer,
and only there); list and read endpoints; rotate the secret, the old one signing on
for an overlap; disable and enable an endpoint (enabling a ``failing`` one re-arms
it). Refusals change nothing: 404 unknown endpoint, 422 a malformed request, an
unknown event type or a URL Dunwell will not deliver to.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from api.deps import EngineDep, SettingsDep, require_server_key
from api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from api.services.endpoints import check_endpoint_url, wake_endpoints
from billing.outbound import EVENT_TYPES, RefusedUrl, UnknownEventType
from ledger.outbound import Endpoint, EndpointNotFound, endpoints

router = APIRouter(
    prefix="/v1/webhook-endpoints",
    tags=["endpoints"],
    dependencies=[Depends(require_server_key)],
    responses={
        **ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such endpoint"},
    },
)

EndpointId = Annotated[str, Path(min_length=1, max_length=40)]
# Writes take a server key; an ops key may read endpoints (api.deps).
WRITE: dict[int | str, dict[str, Any]] = {
    403: {
        "model": ErrorResponse,
        "description": "An ops key writing through the server API (server_key_required)",
    }
}


class EndpointIn(BaseModel):
    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] = Field(
        min_length=1, max_length=len(EVENT_TYPES), description=f"of {', '.join(EVENT_TYPES)}"
    )
    description: str = Field(default="", max_length=500)


class EndpointOut(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str
    status: Literal["enabled", "disabled", "failing"]
    created_at: datetime
    status_changed_at: datetime
    status_reason: str | None


class CreatedEndpointOut(EndpointOut):
    secret: str = Field(description="Signs every delivery (Standard Webhooks); shown once")


class EndpointList(BaseModel):
    items: list[EndpointOut]


class RotateIn(BaseModel):
    overlap_seconds: int = Field(
        default=86_400,
        ge=0,
        le=int(endpoints.MAX_OVERLAP.total_seconds()),
        description="How long the current secret keeps signing beside the new one",
    )


class RotatedOut(BaseModel):
    secret: str
    previous_secrets_expire_at: datetime


class StatusIn(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


def _out(endpoint: Endpoint) -> EndpointOut:
    return EndpointOut(**endpoint.__dict__)


def _not_found(endpoint_id: str) -> ApiError:
    return ApiError(404, "endpoint_not_found", f"no endpoint {endpoint_id!r}")


@router.post("", status_code=201, response_model=CreatedEndpointOut, responses=WRITE)
async def register_endpoint(
    request: Request, body: EndpointIn, engine: EngineDep, settings: SettingsDep
) -> CreatedEndpointOut:
    """Register an endpoint; the answer carries its signing secret."""
    try:
        await check_endpoint_url(body.url, settings)
        endpoint, secret = await asyncio.to_thread(
            endpoints.register,
            engine,
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            at=datetime.now(UTC),
        )
    except RefusedUrl as exc:
        raise ApiError(422, exc.code, str(exc)) from exc
    except UnknownEventType as exc:
        raise ApiError(422, "unknown_event_type", str(exc)) from exc
    await wake_endpoints(request.app.state.temporal, settings.task_queue, [endpoint.id])
    return CreatedEndpointOut(**endpoint.__dict__, secret=secret)


@router.get("", response_model=EndpointList)
async def list_endpoints(
    engine: EngineDep,
    status: Annotated[Literal["enabled", "disabled", "failing"] | None, Query()] = None,
) -> EndpointList:
    """Endpoints, oldest first, optionally in one state (secrets are not shown)."""
    found = await asyncio.to_thread(endpoints.list_endpoints, engine, status)
    return EndpointList(items=[_out(e) for e in found])


@router.get("/{endpoint_id}", response_model=EndpointOut)
async def get_endpoint(endpoint_id: EndpointId, engine: EngineDep) -> EndpointOut:
    """One endpoint."""
    try:
        return _out(await asyncio.to_thread(endpoints.get, engine, endpoint_id))
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc


@router.post("/{endpoint_id}/rotate-secret", response_model=RotatedOut, responses=WRITE)
async def rotate_secret(endpoint_id: EndpointId, body: RotateIn, engine: EngineDep) -> RotatedOut:
    """A new secret; the previous one keeps signing until the overlap ends."""
    try:
        secret, until = await asyncio.to_thread(
            endpoints.rotate_secret,
            engine,
            endpoint_id,
            overlap=timedelta(seconds=body.overlap_seconds),
            at=datetime.now(UTC),
        )
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    return RotatedOut(secret=secret, previous_secrets_expire_at=until)


async def _move(
    engine: EngineDep, endpoint_id: str, status: endpoints.EndpointStatus, reason: str | None
) -> EndpointOut:
    try:
        moved = await asyncio.to_thread(
            endpoints.set_status, engine, endpoint_id, status, reason=reason, at=datetime.now(UTC)
        )
    except EndpointNotFound as exc:
        raise _not_found(endpoint_id) from exc
    return _out(moved)


@router.post("/{endpoint_id}/disable", response_model=EndpointOut, responses=WRITE)
async def disable_endpoint(
    endpoint_id: EndpointId, body: StatusIn, engine: EngineDep
) -> EndpointOut:
    """Stop delivering to the endpoint; its events no longer accumulate for it."""
    return await _move(engine, endpoint_id, "disabled", body.reason)


@router.post("/{endpoint_id}/enable", response_model=EndpointOut, responses=WRITE)
async def enable_endpoint(
    request: Request,
    endpoint_id: EndpointId,
    body: StatusIn,
    engine: EngineDep,
    settings: SettingsDep,
) -> EndpointOut:
    """Deliver to the endpoint again (a failing one is re-armed)."""
    moved = await _move(engine, endpoint_id, "enabled", body.reason)
    await wake_endpoints(request.app.state.temporal, settings.task_queue, [endpoint_id])
    return moved
