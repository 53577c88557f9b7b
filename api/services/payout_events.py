"""Payout webhooks (``payout.*``): recorded once, then handed to the payout's
reconciliation run ``recon-payout-<id>`` by signal-with-start.

The event only says which payout to look at: the run reads the payout and its
transactions from the gateway. A duplicate delivery is answered ``duplicate`` and
signals nothing, so duplicates make one run; a later event for the same payout (paid,
then failed) signals the run going or starts a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from api.services.event_recorder import EventRecorder
from api.temporal_client import TemporalConnection, TemporalUnavailable
from dunwell.settings import Settings
from stores import gateway_events
from stores.gateway_events import ReceivedEvent
from workflows.reconcile_payout import (
    PAYOUT_EVENT_SIGNAL,
    PayoutEvent,
    ReconcileInput,
    ReconcilePayoutWorkflow,
    workflow_id,
)


def payout_of(raw: Mapping[str, Any]) -> str | None:
    """The payout id of a ``payout.*`` event, None for any other event."""
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type.startswith("payout."):
        return None
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    payout_id = obj.get("id") if isinstance(obj, Mapping) else None
    if isinstance(payout_id, str) and payout_id.startswith("po_") and len(payout_id) <= 200:
        return payout_id
    return None


async def start_or_signal(
    temporal: TemporalConnection, task_queue: str, payout_id: str, event: PayoutEvent
) -> None:
    client = await temporal.get()
    try:
        await client.start_workflow(
            ReconcilePayoutWorkflow.run,
            ReconcileInput(payout_id, "webhook" if event.type.startswith("payout.") else "ops"),
            id=workflow_id(payout_id),
            task_queue=task_queue,
            start_signal=PAYOUT_EVENT_SIGNAL,
            start_signal_args=[event],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except RPCError as err:
        raise TemporalUnavailable(f"signal failed: {err.status.name}") from err


async def payout_intake(
    *,
    recorder: EventRecorder,
    temporal: TemporalConnection,
    settings: Settings,
    engine: Engine,
    event_id: str,
    event_type: str,
    payout_id: str,
    raw_body: str,
) -> bool:
    """Record and deliver; False when the event was seen before."""
    claimed = await recorder.record_or_claim(
        ReceivedEvent(event_id, "stripe", event_type, None, raw_body)
    )
    if not claimed:
        return False
    try:
        await start_or_signal(
            temporal, settings.task_queue, payout_id, PayoutEvent(event_id, event_type)
        )
    except Exception:
        await asyncio.to_thread(_release, engine, event_id)
        raise
    recorder.mark_delivered_soon(event_id)
    return True


def _release(engine: Engine, event_id: str) -> None:
    with engine.begin() as conn:
        gateway_events.release_claim(conn, event_id)
