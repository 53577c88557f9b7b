"""Dispute webhooks (``charge.dispute.*``): recorded once, then handed to the dispute's
run ``dispute-<id>`` by signal-with-start. The event only says which dispute to read
back from the gateway."""

from __future__ import annotations

import asyncio
import re
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
from workflows.disputes import DISPUTE_EVENT_SIGNAL, DisputeEvent, DisputeWorkflow, workflow_id

_DISPUTE_ID = re.compile(r"(dp|du)_[A-Za-z0-9]{1,200}")


def dispute_of(raw: Mapping[str, Any]) -> str | None:
    """The dispute id of a ``charge.dispute.*`` event, None for any other event."""
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not event_type.startswith("charge.dispute."):
        return None
    data = raw.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    dispute_id = obj.get("id") if isinstance(obj, Mapping) else None
    if isinstance(dispute_id, str) and _DISPUTE_ID.fullmatch(dispute_id):
        return dispute_id
    return None


async def dispute_intake(
    *,
    recorder: EventRecorder,
    temporal: TemporalConnection,
    settings: Settings,
    engine: Engine,
    event_id: str,
    event_type: str,
    dispute_id: str,
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
            DisputeWorkflow.run,
            dispute_id,
            id=workflow_id(dispute_id),
            task_queue=settings.task_queue,
            start_signal=DISPUTE_EVENT_SIGNAL,
            start_signal_args=[DisputeEvent(event_id, event_type)],
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
