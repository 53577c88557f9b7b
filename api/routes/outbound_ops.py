"""Ops API (ops key): outbound deliveries with their attempts, and replay.

List deliveries (filter by endpoint, status, event), each with every attempt: when,
the receiver's status code or the error, a bounded prefix of its answer. Replay one
event (to every endpoint that had it, or to one) or every event that occurred in a
time range. Refusals change nothing: 404 unknown event or endpoint, 422 a malformed
request, an inverted or too wide range, an endpoint that does not take the event's
type. Failing endpoints are listed by ``GET /v1/webhook-endpoints?status=failing`` and
re-enabled by ``POST /v1/webhook-endpoints/{id}/enable``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from api.deps import EngineDep, SettingsDep, require_ops_key
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.services.endpoints import wake_endpoints
from ledger.outbound import EndpointNotFound, ops

router = APIRouter(
    prefix="/v1/ops/outbound",
    tags=["ops"],
    dependencies=[Depends(require_ops_key)],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such event or endpoint"},
    },
)


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    error: str | None
    response_body: str = Field(description="At most the first 2,000 characters")
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    subscription_id: str | None
    occurred_at: datetime
    status: Literal["pending", "delivered"]
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    history: list[AttemptOut]


class DeliveryList(BaseModel):
    items: list[DeliveryOut]


class ReplayEventIn(BaseModel):
    endpoint_id: str | None = Field(default=None, min_length=1, max_length=40)


class ReplayRangeIn(BaseModel):
    since: datetime
    until: datetime
    endpoint_id: str | None = Field(default=None, min_length=1, max_length=40)


class ReplayOut(BaseModel):
    events: int
    endpoint_ids: list[str]


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ApiError(422, "naive_datetime", f"{what} must carry a UTC offset")
    return value.astimezone(UTC)


@router.get("/deliveries", response_model=DeliveryList)
async def list_deliveries(
    engine: EngineDep,
    endpoint_id: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[Literal["pending", "delivered"] | None, Query()] = None,
    event_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeliveryList:
    """Deliveries, newest first, with their attempts and the receivers' answers."""
    found = await asyncio.to_thread(
        ops.list_deliveries,
        engine,
        endpoint_id=endpoint_id,
        status=status,
        event_id=event_id,
        limit=limit,
    )
    return DeliveryList(
        items=[
            DeliveryOut(
                **{k: v for k, v in d.__dict__.items() if k != "history"},
                history=[AttemptOut(**a.__dict__) for a in d.history],
            )
            for d in found
        ]
    )


@router.post("/events/{event_id}/replay", response_model=ReplayOut)
async def replay_event(
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    event_id: Annotated[str, Path(min_length=1, max_length=40)],
    body: ReplayEventIn,
) -> ReplayOut:
    """Deliver one event again, with its own id."""
    try:
        touched = await asyncio.to_thread(
            ops.replay_event, engine, event_id, endpoint_id=body.endpoint_id, at=datetime.now(UTC)
        )
    except ops.EventNotFound as exc:
        raise ApiError(404, "event_not_found", f"no event {event_id!r}") from exc
    except EndpointNotFound as exc:
        raise ApiError(404, "endpoint_not_found", f"no endpoint {body.endpoint_id!r}") from exc
    except ops.ReplayRefused as exc:
        raise ApiError(422, exc.code, str(exc)) from exc
    await wake_endpoints(request.app.state.temporal, settings.task_queue, touched)
    return ReplayOut(events=1, endpoint_ids=touched)


@router.post("/replay", response_model=ReplayOut)
async def replay_range(
    request: Request, engine: EngineDep, settings: SettingsDep, body: ReplayRangeIn
) -> ReplayOut:
    """Deliver again every event that occurred in [since, until)."""
    since, until = _aware(body.since, "since"), _aware(body.until, "until")
    try:
        count, touched = await asyncio.to_thread(
            ops.replay_range,
            engine,
            since=since,
            until=until,
            endpoint_id=body.endpoint_id,
            at=datetime.now(UTC),
        )
    except EndpointNotFound as exc:
        raise ApiError(404, "endpoint_not_found", f"no endpoint {body.endpoint_id!r}") from exc
    except ops.ReplayRefused as exc:
        raise ApiError(422, exc.code, str(exc)) from exc
    await wake_endpoints(request.app.state.temporal, settings.task_queue, touched)
    return ReplayOut(events=count, endpoint_ids=touched)
