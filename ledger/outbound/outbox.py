"""The outbox: events written in the transaction of the change they report.

``record`` is called with the caller's connection, inside the transaction that commits
the change (an invoice finalized, a payment recorded, a note issued, a subscription's
events recorded by its workflow). It writes each event once, by its id (derived from
the change's own key, ``billing.outbound.event_id``), and a pending delivery for every
endpoint not disabled whose types include the event's type. A retried step finds the
id taken and writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from billing.outbound import EVENT_TYPES, event_id
from ledger.db import insert_or_ignore
from ledger.entries import require_aware_utc
from ledger.outbound.tables import outbound_deliveries as _deliveries
from ledger.outbound.tables import outbound_endpoints as _endpoints
from ledger.outbound.tables import outbound_events as _events


@dataclass(frozen=True)
class OutboxEvent:
    key: str  # the change's own key; the event id is derived from it
    type: str
    occurred_at: datetime
    data: Mapping[str, Any] = field(default_factory=dict)
    subscription_id: str | None = None
    customer_id: str | None = None

    @property
    def id(self) -> str:
        return event_id(self.key)


def record(conn: Connection, events: Sequence[OutboxEvent], *, at: datetime) -> list[str]:
    """Write the events not written yet, with their deliveries; the ids written.

    One multi-row INSERT for the events (a taken id is skipped) and one for their
    deliveries, whatever the number of events."""
    require_aware_utc(at, "at")
    if not events:
        return []
    for event in events:
        if event.type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event.type!r}")
        require_aware_utc(event.occurred_at, "occurred_at")
    by_id = {event.id: event for event in events}
    insert = (
        insert_or_ignore(conn, _events)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(_events.c.seq, _events.c.id, sort_by_parameter_order=True)
    )
    written = conn.execute(
        insert,
        [
            {
                "id": event.id,
                "type": event.type,
                "subscription_id": event.subscription_id,
                "customer_id": event.customer_id,
                "occurred_at": event.occurred_at,
                "recorded_at": at,
                "data": {"object": dict(event.data)},
            }
            for event in by_id.values()
        ],
    ).all()
    if not written:
        return []  # recorded by an earlier attempt of the same step
    wanting = [
        (row.id, frozenset(row.event_types))
        for row in conn.execute(
            select(_endpoints.c.id, _endpoints.c.event_types).where(
                _endpoints.c.status != "disabled"
            )
        )
    ]
    rows = [
        {
            "endpoint_id": endpoint_id,
            "event_seq": seq,
            "ordering_key": by_id[event_id].subscription_id or event_id,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": by_id[event_id].occurred_at,
        }
        for seq, event_id in written
        for endpoint_id, types in wanting
        if by_id[event_id].type in types
    ]
    if rows:
        conn.execute(_deliveries.insert(), rows)
    return [event_id for _seq, event_id in written]
