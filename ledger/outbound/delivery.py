"""Deliveries: what an endpoint's delivery workflow sends next, and what came of it.

``due`` returns, for one endpoint, the deliveries due at ``now`` that head their
ordering key (no earlier event of the same subscription is still pending for the
endpoint): sending only heads keeps each subscription's events in order, while
different subscriptions go out side by side. ``record`` writes each attempt and moves
its delivery: delivered on a 2xx, else the next attempt after the backoff
(``billing.outbound.next_attempt_delay``). A delivery failing for ``GIVE_UP_AFTER``
marks the endpoint ``failing``; its deliveries stay pending (events keep accumulating)
until ops enable the endpoint again, which makes them due at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from billing.outbound import GIVE_UP_AFTER, next_attempt_delay
from ledger.entries import require_aware_utc
from ledger.outbound.endpoints import SigningSecret, signing_secrets
from ledger.outbound.tables import outbound_attempts as _attempts
from ledger.outbound.tables import outbound_deliveries as _deliveries
from ledger.outbound.tables import outbound_endpoints as _endpoints
from ledger.outbound.tables import outbound_events as _events

# A prefix of the receiver's answer is kept with the attempt, never more.
BODY_KEPT = 2_000


@dataclass(frozen=True)
class DueDelivery:
    delivery_id: int
    event_id: str
    event_type: str
    occurred_at: datetime
    data: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class EndpointWork:
    """What the delivery workflow needs of its endpoint for one round."""

    status: str
    url: str
    secrets: list[SigningSecret]
    due: list[DueDelivery]


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    attempted_at: datetime  # the wall clock of the POST
    status_code: int | None
    error: str | None
    response_body: str
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def due(conn: Connection, endpoint_id: str, now: datetime, limit: int) -> EndpointWork | None:
    """The endpoint's state and the deliveries due now that head their subscription;
    None for an unknown endpoint."""
    now = require_aware_utc(now, "now")
    endpoint = conn.execute(select(_endpoints).where(_endpoints.c.id == endpoint_id)).first()
    if endpoint is None:
        return None
    secrets = signing_secrets(conn, endpoint_id, now)
    if endpoint.status != "enabled":
        return EndpointWork(endpoint.status, endpoint.url, secrets, [])
    d = _deliveries
    query = (
        select(d.c.id, d.c.attempts, _events.c.id.label("event_id"), _events.c.type)
        .add_columns(_events.c.occurred_at, _events.c.data)
        .join(_events, _events.c.seq == d.c.event_seq)
        .where(_heads(endpoint_id), d.c.next_attempt_at <= now)
        .order_by(d.c.event_seq)
        .limit(limit)
    )
    rows = conn.execute(query).all()
    return EndpointWork(
        endpoint.status,
        endpoint.url,
        secrets,
        [
            DueDelivery(
                delivery_id=int(r.id),
                event_id=r.event_id,
                event_type=r.type,
                occurred_at=r.occurred_at,
                data=dict(r.data),
                attempts=int(r.attempts),
            )
            for r in rows
        ],
    )


def _heads(endpoint_id: str) -> Any:
    """Pending deliveries of the endpoint that no earlier event of their subscription
    still waits before."""
    d, earlier = _deliveries, aliased(_deliveries)
    return and_(
        d.c.endpoint_id == endpoint_id,
        d.c.status == "pending",
        ~exists().where(
            and_(
                earlier.c.endpoint_id == endpoint_id,
                earlier.c.status == "pending",
                earlier.c.ordering_key == d.c.ordering_key,
                earlier.c.event_seq < d.c.event_seq,
            )
        ),
    )


def next_due(conn: Connection, endpoint_id: str) -> datetime | None:
    """When the endpoint's next delivery is due (the earliest of those heading their
    subscription), if any is pending."""
    return conn.execute(
        select(func.min(_deliveries.c.next_attempt_at)).where(_heads(endpoint_id))
    ).scalar()


def backing_off(conn: Connection, endpoint_id: str) -> bool:
    """Whether a pending delivery of the endpoint has failed (it waits out a backoff)."""
    failed = select(_deliveries.c.id).where(
        _deliveries.c.endpoint_id == endpoint_id,
        _deliveries.c.status == "pending",
        _deliveries.c.first_failed_at.is_not(None),
    )
    return conn.execute(failed.limit(1)).first() is not None


def record(conn: Connection, endpoint_id: str, outcomes: Sequence[Outcome], now: datetime) -> bool:
    """Write the attempts and move their deliveries; True when this gave up on the
    endpoint (it is now ``failing``)."""
    now = require_aware_utc(now, "now")
    if not outcomes:
        return False
    conn.execute(
        insert(_attempts),
        [
            {
                "delivery_id": o.delivery_id,
                "attempted_at": o.attempted_at,
                "status_code": o.status_code,
                "error": (o.error or None) and o.error[:500],
                "response_body": o.response_body[:BODY_KEPT],
                "duration_ms": o.duration_ms,
            }
            for o in outcomes
        ],
    )
    ids = [o.delivery_id for o in outcomes]
    rows = {
        int(r.id): r
        for r in conn.execute(
            select(_deliveries.c.id, _deliveries.c.attempts, _deliveries.c.first_failed_at).where(
                _deliveries.c.id.in_(ids)
            )
        )
    }
    give_up = False
    for o in outcomes:
        row: Any = rows[o.delivery_id]
        attempts = int(row.attempts) + 1
        if o.delivered:
            values: dict[str, Any] = {
                "status": "delivered",
                "delivered_at": now,
                "attempts": attempts,
                "last_status_code": o.status_code,
            }
        else:
            first_failed = row.first_failed_at or now
            failures = attempts
            values = {
                "attempts": attempts,
                "first_failed_at": first_failed,
                "next_attempt_at": now + next_attempt_delay(str(o.delivery_id), failures),
                "last_status_code": o.status_code,
            }
            give_up = give_up or now - first_failed >= GIVE_UP_AFTER
        conn.execute(update(_deliveries).where(_deliveries.c.id == o.delivery_id).values(values))
    if give_up:
        conn.execute(
            update(_endpoints)
            .where(_endpoints.c.id == endpoint_id, _endpoints.c.status == "enabled")
            .values(
                status="failing",
                status_changed_at=now,
                status_reason=f"deliveries failed for {GIVE_UP_AFTER.days} days",
            )
        )
    return give_up
