"""``dunwell events``: outbound endpoints, deliveries with their attempts, replay, and
re-enabling an endpoint.

Reads and replays go to the database (``ledger.outbound``); a replay or an enable then
wakes the endpoints' delivery workflows on Temporal, so such a command leaves through
``os._exit`` like every process that held a Temporal client. A refusal (unknown event
or endpoint, a bad range) prints why, exits 2 and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

import typer
from sqlalchemy import Engine
from temporalio.service import RPCError

from dunwell import temporal
from dunwell.outbound_start import wake_delivery
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.outbound import EndpointNotFound, endpoints, ops

events_app = typer.Typer(help="Outbound events: endpoints, deliveries, replay.")


def _engine() -> Engine:
    return make_engine(get_settings().database_url)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def _refused(message: str) -> NoReturn:
    typer.echo(f"dunwell events: refused: {message}", err=True)
    raise typer.Exit(2)


def _wake_and_exit(endpoint_ids: list[str]) -> None:
    async def wake() -> int:
        settings = get_settings()
        try:
            client = await temporal.connect(settings)
            for endpoint_id in endpoint_ids:
                await wake_delivery(client, settings.task_queue, endpoint_id)
        except (RPCError, RuntimeError, OSError) as err:
            typer.echo(f"not woken (temporal: {err}); the workflows poll for it", err=True)
        return 0

    code = asyncio.run(wake()) if endpoint_ids else 0
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@events_app.command("endpoints")
def list_endpoints(
    status: Annotated[str | None, typer.Option(help="enabled, disabled or failing")] = None,
) -> None:
    """Endpoints, oldest first (failing ones need ops: see ``enable``)."""
    if status not in (None, "enabled", "disabled", "failing"):
        _refused(f"unknown status {status!r}")
    found = endpoints.list_endpoints(_engine(), status)  # type: ignore[arg-type]
    typer.echo(_json([e.__dict__ for e in found]))


@events_app.command("deliveries")
def deliveries(
    endpoint: Annotated[str | None, typer.Option(help="Only this endpoint's")] = None,
    status: Annotated[str | None, typer.Option(help="pending or delivered")] = None,
    event: Annotated[str | None, typer.Option(help="Only this event's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
) -> None:
    """Deliveries, newest first, with every attempt and the receiver's answer."""
    if status not in (None, "pending", "delivered"):
        _refused(f"unknown status {status!r}")
    found = ops.list_deliveries(
        _engine(), endpoint_id=endpoint, status=status, event_id=event, limit=limit
    )
    typer.echo(_json([{**d.__dict__, "history": [a.__dict__ for a in d.history]} for d in found]))


@events_app.command("replay")
def replay(
    event_id: Annotated[str, typer.Argument(help="The event to deliver again (evt_...)")],
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint")] = None,
) -> None:
    """Deliver one event again, with its own id."""
    try:
        touched = ops.replay_event(_engine(), event_id, endpoint_id=endpoint, at=datetime.now(UTC))
    except ops.EventNotFound:
        _refused(f"no event {event_id!r}")
    except EndpointNotFound:
        _refused(f"no endpoint {endpoint!r}")
    except ops.ReplayRefused as err:
        _refused(f"{err.code}: {err}")
    typer.echo(_json({"events": 1, "endpoint_ids": touched}))
    _wake_and_exit(touched)


def _instant(text: str, what: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        _refused(f"{what} is not an ISO 8601 instant: {text!r}")
    if value.tzinfo is None:
        _refused(f"{what} must carry a UTC offset (e.g. 2026-12-01T00:00:00+00:00)")
    return value.astimezone(UTC)


@events_app.command("replay-range")
def replay_range(
    since: Annotated[str, typer.Option(help="ISO 8601 instant, included")],
    until: Annotated[str, typer.Option(help="ISO 8601 instant, excluded")],
    endpoint: Annotated[str | None, typer.Option(help="Only to this endpoint")] = None,
) -> None:
    """Deliver again every event that occurred in [since, until)."""
    start, end = _instant(since, "--since"), _instant(until, "--until")
    try:
        count, touched = ops.replay_range(
            _engine(), since=start, until=end, endpoint_id=endpoint, at=datetime.now(UTC)
        )
    except EndpointNotFound:
        _refused(f"no endpoint {endpoint!r}")
    except ops.ReplayRefused as err:
        _refused(f"{err.code}: {err}")
    typer.echo(_json({"events": count, "endpoint_ids": touched}))
    _wake_and_exit(touched)


@events_app.command("enable")
def enable(
    endpoint_id: Annotated[str, typer.Argument(help="The endpoint (we_...)")],
    reason: Annotated[str | None, typer.Option(help="Recorded with the change")] = None,
) -> None:
    """Enable an endpoint again; a failing one is re-armed, its events due at once."""
    try:
        moved = endpoints.set_status(
            _engine(), endpoint_id, "enabled", reason=reason, at=datetime.now(UTC)
        )
    except EndpointNotFound:
        _refused(f"no endpoint {endpoint_id!r}")
    typer.echo(_json(moved.__dict__))
    _wake_and_exit([endpoint_id])
