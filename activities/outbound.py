"""Outbound event activities: a workflow's events written to the outbox.

A workflow records its events in its own state in the step that makes the change
(each with a key derived from the workflow's identity and a sequence number it
carries), then hands them here; the outbox keeps each event id once, so a retried
activity writes nothing twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Engine
from temporalio import activity

from ledger import unit_of_work
from ledger.outbound import OutboxEvent, outbox

Scalar = str | int | bool | None


@dataclass(frozen=True)
class EventToRecord:
    key: str
    type: str
    occurred_at: datetime
    data: dict[str, Scalar] = field(default_factory=dict)
    subscription_id: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class RecordEventsRequest:
    events: list[EventToRecord]


class OutboundActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn(name="outbound.record_events")
    async def record_events(self, request: RecordEventsRequest) -> list[str]:
        """Write the events not written yet; the ids this attempt wrote."""
        events = [
            OutboxEvent(
                key=e.key,
                type=e.type,
                occurred_at=e.occurred_at,
                data=e.data,
                subscription_id=e.subscription_id,
                customer_id=e.customer_id,
            )
            for e in request.events
        ]
        now = datetime.now(UTC)
        return await asyncio.to_thread(
            unit_of_work.transact,
            self._engine,
            lambda conn: outbox.record(conn, events, at=now),
        )
