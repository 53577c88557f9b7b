"""Gateway event intake: Stripe webhooks, shared delivery to the subscription workflow,
and the ops listing of parked events.

Intake is verify -> record -> signal -> 200; business processing happens later in the
workflow. A customer-scoped event with no subscription of its own goes to every
subscription of its gateway customer (``api.services.customer_events``). Delivery is at-least-once towards Temporal and exactly-once in effect: the
``processed_events`` row is inserted ``received`` with a delivery claim, the workflow is
signalled (``signal_with_start``), then the row becomes ``delivered``. If the signal fails
the claim is released and the sender gets 503 + Retry-After, so its retry signals again; if
the process dies in between, the claim expires and a retry signals again. The workflow
drops an event id it has already seen, so a repeated signal is harmless. A duplicate that
arrives while another request holds the claim is answered ``duplicate`` at once: the
holder either delivers, or fails towards its own sender, who retries.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import stripe
from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from api.deps import EngineDep, OpsKey, SettingsDep
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.schemas import ROW_ID_MAX
from api.services import customer_events
from api.services.disputes import dispute_intake, dispute_of
from api.services.event_recorder import EventRecorder
from api.services.payout_events import payout_intake, payout_of
from api.services.refunds import charge_of_refund_event, refund_intake
from api.temporal_client import TemporalConnection, TemporalUnavailable
from billing.events import (
    GatewayEvent,
    MalformedEvent,
    SubscriptionStart,
    Unroutable,
    stripe_event,
)
from dunwell.settings import Settings
from stores import gateway_events
from stores.gateway_events import ReceivedEvent

log = logging.getLogger(__name__)

WORKFLOW_TYPE = "SubscriptionWorkflow"
SIGNAL_NAME = "gateway_event"
SIGNATURE_TOLERANCE_SECONDS = 300
# Longer than a signal can take (SIGNAL_RPC_TIMEOUT plus connecting), so a live claim is
# never taken over; short enough that a crashed request's claim is gone before a retry.
DELIVERY_LEASE = timedelta(seconds=30)
SIGNAL_RPC_TIMEOUT = timedelta(seconds=10)

router = APIRouter(tags=["webhooks"])

INTAKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad or stale signature, or malformed event"},
    503: {"model": ErrorResponse, "description": "Temporal unreachable; retry (Retry-After)"},
}


class IntakeAck(BaseModel):
    status: Literal["accepted", "duplicate", "parked"]
    event_id: str
    reason: str | None = None


def workflow_id(subscription_id: str) -> str:
    return f"subscription-{subscription_id}"


@router.post(
    "/webhooks/stripe",
    response_model=IntakeAck,
    response_model_exclude_none=True,
    responses=INTAKE_RESPONSES,
)
async def stripe_webhook(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> IntakeAck:
    """Stripe's signed events: verified on the raw body, recorded once, signalled on."""
    raw = await request.body()
    _verify_stripe_signature(
        raw, stripe_signature, settings.stripe_webhook_secret.get_secret_value()
    )
    try:
        parsed = json.loads(raw)
        payout_id = payout_of(parsed) if isinstance(parsed, dict) else None
        if payout_id is not None:
            return await _routed_event(
                request, settings, engine, parsed, raw, payout_intake, payout_id=payout_id
            )
        charge_id = charge_of_refund_event(parsed) if isinstance(parsed, dict) else None
        if charge_id is not None:
            return await _routed_event(
                request, settings, engine, parsed, raw, refund_intake, charge_id=charge_id
            )
        dispute_id = dispute_of(parsed) if isinstance(parsed, dict) else None
        if dispute_id is not None:
            return await _routed_event(
                request, settings, engine, parsed, raw, dispute_intake, dispute_id=dispute_id
            )
        outcome = stripe_event(parsed)
        copies: list[GatewayEvent] = []
        if isinstance(outcome, Unroutable) and outcome.reason == "no_subscription":
            copies = await customer_events.fan_out(engine, parsed)
    except (ValueError, MalformedEvent) as err:
        raise ApiError(400, "invalid_event", "the body is not a Stripe event") from err
    if copies:
        return await _intake_copies(request, settings, engine, outcome.event_id, copies, raw)
    return await intake(request, settings, engine, outcome, raw.decode("utf-8"))


async def _intake_copies(
    request: Request,
    settings: Settings,
    engine: Engine,
    event_id: str,
    copies: list[GatewayEvent],
    raw: bytes,
) -> IntakeAck:
    """A customer-scoped event: each subscription's copy through the intake in turn.
    Accepted when any copy was delivered now; a failure answers 503 and the sender's
    retry delivers the copies still undelivered (the others are duplicates then)."""
    body = raw.decode("utf-8")
    acks = [await intake(request, settings, engine, copy, body) for copy in copies]
    accepted = any(ack.status == "accepted" for ack in acks)
    return IntakeAck(status="accepted" if accepted else "duplicate", event_id=event_id)


async def _routed_event(
    request: Request,
    settings: Settings,
    engine: Engine,
    parsed: dict[str, Any],
    raw: bytes,
    deliver: Callable[..., Awaitable[bool]],
    **target: str,
) -> IntakeAck:
    """A settlement-side event to its own run: ``payout.*`` (api.services.payout_events,
    ``payout_id``), refund events (api.services.refunds, ``charge_id``) and
    ``charge.dispute.*`` (api.services.disputes, ``dispute_id``)."""
    event_id, event_type = parsed.get("id"), parsed.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise MalformedEvent("a Stripe event needs id and type")
    delivered = await deliver(
        recorder=request.app.state.event_recorder,
        temporal=request.app.state.temporal,
        settings=settings,
        engine=engine,
        event_id=event_id,
        event_type=event_type,
        raw_body=raw.decode("utf-8"),
        **target,
    )
    return IntakeAck(status="accepted" if delivered else "duplicate", event_id=event_id)


def _verify_stripe_signature(raw: bytes, header: str | None, secret: str) -> None:
    if not header:
        raise ApiError(400, "missing_signature", "the Stripe-Signature header is required")
    if not header.isascii():
        raise ApiError(400, "invalid_signature", "the Stripe-Signature header is malformed")
    try:
        # The signature only: the body is parsed once, by the caller.
        stripe.WebhookSignature.verify_header(
            raw.decode("utf-8"), header, secret, tolerance=SIGNATURE_TOLERANCE_SECONDS
        )
    except stripe.SignatureVerificationError as err:
        code = "stale_signature" if _is_stale(header) else "invalid_signature"
        raise ApiError(400, code, "the Stripe signature does not verify") from err
    except ValueError as err:  # not UTF-8: cannot be a signed Stripe event
        raise ApiError(400, "invalid_event", "the body is not a Stripe event") from err


def _is_stale(header: str) -> bool:
    """Whether the header's timestamp is outside the tolerance (classifies the failure)."""
    for item in header.split(","):
        key, _, value = item.partition("=")
        if key.strip() == "t" and value.strip().isascii() and value.strip().isdigit():
            age = datetime.now(UTC).timestamp() - int(value)
            return age > SIGNATURE_TOLERANCE_SECONDS
    return False


async def intake(
    request: Request,
    settings: Settings,
    engine: Engine,
    outcome: GatewayEvent | Unroutable,
    raw_body: str,
) -> IntakeAck:
    """Record the event once, then park it or hand it to its subscription workflow."""
    now = datetime.now(UTC)
    if isinstance(outcome, Unroutable):
        parked = await asyncio.to_thread(_park, engine, outcome, raw_body, now)
        if not parked:
            return IntakeAck(status="duplicate", event_id=outcome.event_id)
        log.warning(
            "parked gateway event %s (%s): %s", outcome.event_id, outcome.type, outcome.reason
        )
        return IntakeAck(status="parked", event_id=outcome.event_id, reason=outcome.reason)

    event = outcome
    recorder: EventRecorder = request.app.state.event_recorder
    claimed = await recorder.record_or_claim(
        ReceivedEvent(
            event_id=event.event_id,
            source=event.source,
            event_type=event.type,
            subscription_id=event.subscription_id,
            raw_body=raw_body,
        )
    )
    if not claimed:
        return IntakeAck(status="duplicate", event_id=event.event_id)
    try:
        await signal_with_start(request.app.state.temporal, settings, event)
    except Exception:
        await asyncio.to_thread(_release, engine, event.event_id)
        raise
    # Bookkeeping the acknowledgement does not wait for: if it is lost, the claim
    # expires and a retried delivery signals again, which the workflow drops as a
    # duplicate.
    recorder.mark_delivered_soon(event.event_id)
    return IntakeAck(status="accepted", event_id=event.event_id)


async def signal_with_start(
    temporal: TemporalConnection, settings: Settings, event: GatewayEvent
) -> None:
    """Signal ``gateway_event`` to ``subscription-<id>``, starting the workflow if needed.

    A plain signal first: the workflow almost always runs already, and a signal costs
    Temporal and this process less than a signal-with-start. Only when there is no
    running workflow (``NOT_FOUND``, also for a closed one) does signal-with-start
    follow, which starts it or, if another request started it meanwhile, signals it.
    Either way the event is in the workflow's history before the caller acknowledges.
    """
    client = await temporal.get()
    handle = client.get_workflow_handle(workflow_id(event.subscription_id))
    try:
        await handle.signal(SIGNAL_NAME, event, rpc_timeout=SIGNAL_RPC_TIMEOUT)
        return
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise TemporalUnavailable(f"signal failed: {err.status.name}") from err
    try:
        await client.start_workflow(
            WORKFLOW_TYPE,
            SubscriptionStart(subscription_id=event.subscription_id),
            id=workflow_id(event.subscription_id),
            task_queue=settings.task_queue,
            start_signal=SIGNAL_NAME,
            start_signal_args=[event],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            rpc_timeout=SIGNAL_RPC_TIMEOUT,
        )
    except RPCError as err:
        raise TemporalUnavailable(f"signal failed: {err.status.name}") from err


def _park(engine: Engine, event: Unroutable, raw_body: str, now: datetime) -> bool:
    with engine.begin() as conn:
        return gateway_events.record_parked(
            conn,
            event_id=event.event_id,
            source=event.source,
            event_type=event.type,
            object_type=event.object_type,
            object_id=event.object_id,
            subscription_id=event.subscription_id,
            reason=event.reason,
            raw_body=raw_body,
            now=now,
        )


def _release(engine: Engine, event_id: str) -> None:
    with engine.begin() as conn:
        gateway_events.release_claim(conn, event_id)


# --- ops -------------------------------------------------------------------------------


class ParkedEventOut(BaseModel):
    id: int
    event_id: str
    source: str
    event_type: str
    object_type: str | None
    object_id: str | None
    subscription_id: str | None
    reason: str
    parked_at: datetime


class ParkedEventsPage(BaseModel):
    items: list[ParkedEventOut]
    next_after: int | None


@router.get(
    "/v1/ops/parked-events",
    response_model=ParkedEventsPage,
    tags=["ops"],
    responses=OPS_ERROR_RESPONSES,
)
async def parked_events(
    _auth: OpsKey,
    engine: EngineDep,
    after: Annotated[
        int, Query(ge=0, le=ROW_ID_MAX, description="Continue after this parked-event id")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> ParkedEventsPage:
    """Gateway events that could not be routed to a subscription, oldest first."""

    def load() -> list[gateway_events.ParkedRow]:
        with engine.connect() as conn:
            return gateway_events.list_parked(conn, after_id=after, limit=limit)

    rows = await asyncio.to_thread(load)
    items = [ParkedEventOut(**vars(row)) for row in rows]
    return ParkedEventsPage(items=items, next_after=items[-1].id if len(items) == limit else None)
