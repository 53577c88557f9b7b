"""Reading the outbox: events by subscription or time, and each event's deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from ledger import unit_of_work
from ledger.outbound.tables import outbound_deliveries as _deliveries
from ledger.outbound.tables import outbound_events as _events


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    id: str
    type: str
    subscription_id: str | None
    customer_id: str | None
    occurred_at: datetime
    recorded_at: datetime
    data: dict[str, Any]


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    endpoint_id: str
    event_id: str
    status: str
    attempts: int
    next_attempt_at: datetime
    first_failed_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None


def _event(row: Any) -> StoredEvent:
    return StoredEvent(
        seq=int(row.seq),
        id=row.id,
        type=row.type,
        subscription_id=row.subscription_id,
        customer_id=row.customer_id,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        data=dict(row.data),
    )


def list_events(
    engine: Engine,
    *,
    subscription_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[StoredEvent]:
    """Events in the order they were recorded, optionally one subscription's, occurred
    in ``[since, until)``."""
    query = select(_events).order_by(_events.c.seq).limit(limit)
    if subscription_id is not None:
        query = query.where(_events.c.subscription_id == subscription_id)
    if since is not None:
        query = query.where(_events.c.occurred_at >= since)
    if until is not None:
        query = query.where(_events.c.occurred_at < until)

    def work(conn: Connection) -> list[StoredEvent]:
        return [_event(row) for row in conn.execute(query)]

    return unit_of_work.read(engine, work)


def deliveries_of(engine: Engine, event_id: str) -> list[DeliveryRow]:
    query = (
        select(_deliveries, _events.c.id.label("event_id"))
        .join(_events, _events.c.seq == _deliveries.c.event_seq)
        .where(_events.c.id == event_id)
        .order_by(_deliveries.c.id)
    )

    def work(conn: Connection) -> list[DeliveryRow]:
        return [
            DeliveryRow(
                id=int(r.id),
                endpoint_id=r.endpoint_id,
                event_id=r.event_id,
                status=r.status,
                attempts=r.attempts,
                next_attempt_at=r.next_attempt_at,
                first_failed_at=r.first_failed_at,
                delivered_at=r.delivered_at,
                last_status_code=r.last_status_code,
            )
            for r in conn.execute(query)
        ]

    return unit_of_work.read(engine, work)
