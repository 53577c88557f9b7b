"""Refunds ops ask for (the ops API and ``dunwell refund``), and the gateway's refund
webhooks.

Asking: the refund is reserved in the invoice store (refused there, writing nothing:
an unknown invoice, one not paid, an amount above what remains refundable, an unknown
reason), then ``refund-<key>`` makes it at the gateway and books it. The caller waits
a few seconds for the outcome; a refund still going (a gateway outage) is answered as
``requested`` and finishes on its own.

Webhooks (``charge.refunded``, ``refund.created``, ``refund.updated``,
``charge.refund.updated``): recorded once, then handed to the charge's
``refunds-<charge id>`` run by signal-with-start; the event only says which charge to
read back from the gateway.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.services.event_recorder import EventRecorder
from api.temporal_client import TemporalConnection, TemporalUnavailable
from dunwell.settings import Settings
from ledger.invoices import InvoiceStore
from ledger.invoices.refunds import RefundView
from stores import gateway_events
from stores.gateway_events import ReceivedEvent
from workflows.refunds import (
    REFUND_EVENT_SIGNAL,
    ChargeRefundsWorkflow,
    RefundEvent,
    RefundWorkflow,
    charge_workflow_id,
    refund_workflow_id,
)

REFUND_EVENT_TYPES = frozenset(
    {"charge.refunded", "refund.created", "refund.updated", "charge.refund.updated"}
)
WAIT = timedelta(seconds=20)
_CHARGE_ID = re.compile(r"ch_[A-Za-z0-9]{1,200}")


def charge_of_refund_event(raw: Mapping[str, Any]) -> str | None:
    """The charge a refund event is about, None for any other event."""
    if raw.get("type") not in REFUND_EVENT_TYPES:
        return None
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        return None
    charge = obj.get("id") if obj.get("object") == "charge" else obj.get("charge")
    if isinstance(charge, Mapping):
        charge = charge.get("id")
    if isinstance(charge, str) and _CHARGE_ID.fullmatch(charge):
        return charge
    return None


async def request_refund(
    connect: Callable[[], Awaitable[Client]],
    invoices: InvoiceStore,
    task_queue: str,
    *,
    invoice_id: str,
    key: str,
    amount: int | None,
    reason: str,
    actor: str,
    note: str | None,
    wait: timedelta = WAIT,
) -> RefundView:
    """Reserve, start ``refund-<key>``, and wait up to ``wait`` for it; the refund as it
    stands then. Store errors propagate before anything is started."""
    held = await asyncio.to_thread(
        invoices.request_refund,
        invoice_id,
        key=key,
        amount=amount,
        reason=reason,
        actor=actor,
        at=datetime.now(UTC),
        note=note,
    )
    if held.status == "requested":
        client = await connect()
        try:
            handle = await client.start_workflow(
                RefundWorkflow.run,
                key,
                id=refund_workflow_id(key),
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except RPCError as err:
            raise TemporalUnavailable(f"refund not started: {err.status.name}") from err
        try:
            await asyncio.wait_for(handle.result(), wait.total_seconds())
        except TimeoutError:
            pass  # still going: answered as requested, it finishes on its own
    return await asyncio.to_thread(invoices.get_refund, key)


async def refund_intake(
    *,
    recorder: EventRecorder,
    temporal: TemporalConnection,
    settings: Settings,
    engine: Engine,
    event_id: str,
    event_type: str,
    charge_id: str,
    raw_body: str,
) -> bool:
    """Record and deliver; False when the event was seen before."""
    claimed = await recorder.record_or_claim(
        ReceivedEvent(event_id, "stripe", event_type, None, raw_body)
    )
    if not claimed:
        return False
    try:
        client = await temporal.get()
        await client.start_workflow(
            ChargeRefundsWorkflow.run,
            charge_id,
            id=charge_workflow_id(charge_id),
            task_queue=settings.task_queue,
            start_signal=REFUND_EVENT_SIGNAL,
            start_signal_args=[RefundEvent(event_id, event_type)],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except RPCError as err:
        await asyncio.to_thread(_release, engine, event_id)
        raise TemporalUnavailable(f"signal failed: {err.status.name}") from err
    except Exception:
        await asyncio.to_thread(_release, engine, event_id)
        raise
    recorder.mark_delivered_soon(event_id)
    return True


def _release(engine: Engine, event_id: str) -> None:
    with engine.begin() as conn:
        gateway_events.release_claim(conn, event_id)
