"""What ops do with deliveries: list them with their attempts, and replay.

Replaying puts an event's deliveries back to ``pending``, due at once, with a fresh
three days before anything gives up; the event keeps its id, so a receiver that already
has it drops the copy. An endpoint named that never had a delivery of the event gets
one if it takes the event's type. A range replays every event that occurred in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from ledger import unit_of_work
from ledger.db import insert_or_ignore
from ledger.entries import require_aware_utc
from ledger.outbound.endpoints import EndpointNotFound
from ledger.outbound.tables import outbound_attempts as _attempts
from ledger.outbound.tables import outbound_deliveries as _deliveries
from ledger.outbound.tables import outbound_endpoints as _endpoints
from ledger.outbound.tables import outbound_events as _events

# The widest range one replay may cover, and the most events it may touch.
MAX_RANGE = timedelta(days=31)
MAX_REPLAYED = 100_000


class EventNotFound(LookupError):
    """No event has this id."""


class ReplayRefused(ValueError):
    """The replay asked for is not allowed; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AttemptView:
    attempted_at: datetime
    status_code: int | None
    error: str | None
    response_body: str
    duration_ms: int


@dataclass(frozen=True)
class DeliveryView:
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    subscription_id: str | None
    occurred_at: datetime
    status: str
    attempts: int
    next_attempt_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    history: list[AttemptView]


def list_deliveries(
    engine: Engine,
    *,
    endpoint_id: str | None = None,
    status: str | None = None,
    event_id: str | None = None,
    limit: int = 50,
) -> list[DeliveryView]:
    """Deliveries, newest first, each with its attempts (oldest first)."""
    d, e = _deliveries, _events
    query = (
        select(d, e.c.id.label("event_id"), e.c.type, e.c.subscription_id, e.c.occurred_at)
        .join(e, e.c.seq == d.c.event_seq)
        .order_by(d.c.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(d.c.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(d.c.status == status)
    if event_id is not None:
        query = query.where(e.c.id == event_id)

    def work(conn: Connection) -> list[DeliveryView]:
        rows = conn.execute(query).all()
        history: dict[int, list[AttemptView]] = {int(r.id): [] for r in rows}
        if history:
            attempts = conn.execute(
                select(_attempts)
                .where(_attempts.c.delivery_id.in_(list(history)))
                .order_by(_attempts.c.id)
            )
            for a in attempts:
                history[int(a.delivery_id)].append(
                    AttemptView(
                        a.attempted_at, a.status_code, a.error, a.response_body, a.duration_ms
                    )
                )
        return [_view(r, history[int(r.id)]) for r in rows]

    return unit_of_work.read(engine, work)


def _view(r: Any, history: list[AttemptView]) -> DeliveryView:
    return DeliveryView(
        id=int(r.id),
        endpoint_id=r.endpoint_id,
        event_id=r.event_id,
        event_type=r.type,
        subscription_id=r.subscription_id,
        occurred_at=r.occurred_at,
        status=r.status,
        attempts=r.attempts,
        next_attempt_at=r.next_attempt_at,
        delivered_at=r.delivered_at,
        last_status_code=r.last_status_code,
        history=history,
    )


def _requeue(conn: Connection, seqs: list[int], endpoint_id: str | None, at: datetime) -> set[str]:
    """Deliveries of the events back to pending, due at ``at``; the endpoints touched."""
    touched: set[str] = set()
    for start in range(0, len(seqs), 1_000):
        chunk = seqs[start : start + 1_000]
        query = update(_deliveries).where(_deliveries.c.event_seq.in_(chunk))
        if endpoint_id is not None:
            query = query.where(_deliveries.c.endpoint_id == endpoint_id)
        conn.execute(query.values(status="pending", next_attempt_at=at, first_failed_at=None))
        found = select(_deliveries.c.endpoint_id).where(_deliveries.c.event_seq.in_(chunk))
        if endpoint_id is not None:
            found = found.where(_deliveries.c.endpoint_id == endpoint_id)
        touched.update(conn.execute(found.distinct()).scalars())
    return touched


def _endpoint(conn: Connection, endpoint_id: str) -> Any:
    row = conn.execute(select(_endpoints).where(_endpoints.c.id == endpoint_id)).first()
    if row is None:
        raise EndpointNotFound(endpoint_id)
    return row


def replay_event(
    engine: Engine, event_id: str, *, endpoint_id: str | None, at: datetime
) -> list[str]:
    """Deliver the event again (to one endpoint, or to every endpoint that had it);
    the endpoints it goes to."""
    at = require_aware_utc(at, "at")

    def work(conn: Connection) -> list[str]:
        event = conn.execute(select(_events).where(_events.c.id == event_id)).first()
        if event is None:
            raise EventNotFound(event_id)
        if endpoint_id is not None:
            endpoint = _endpoint(conn, endpoint_id)
            if event.type not in endpoint.event_types:
                raise ReplayRefused(
                    "event_type_not_wanted", f"{endpoint_id} does not take {event.type} events"
                )
            conn.execute(
                insert_or_ignore(conn, _deliveries)
                .values(
                    endpoint_id=endpoint_id,
                    event_seq=event.seq,
                    ordering_key=event.subscription_id or event.id,
                    status="pending",
                    attempts=0,
                    next_attempt_at=at,
                )
                .on_conflict_do_nothing(index_elements=["endpoint_id", "event_seq"])
            )
        return sorted(_requeue(conn, [int(event.seq)], endpoint_id, at))

    return unit_of_work.transact(engine, work)


def replay_range(
    engine: Engine,
    *,
    since: datetime,
    until: datetime,
    endpoint_id: str | None,
    at: datetime,
) -> tuple[int, list[str]]:
    """Deliver again every event that occurred in ``[since, until)`` (to one endpoint,
    or to every endpoint that had them); how many events, and the endpoints."""
    since, until = require_aware_utc(since, "since"), require_aware_utc(until, "until")
    at = require_aware_utc(at, "at")
    if not since < until:
        raise ReplayRefused("invalid_range", "since must be before until")
    if until - since > MAX_RANGE:
        raise ReplayRefused("range_too_wide", f"a replay covers at most {MAX_RANGE.days} days")

    def work(conn: Connection) -> tuple[int, list[str]]:
        if endpoint_id is not None:
            _endpoint(conn, endpoint_id)
        seqs = list(
            conn.execute(
                select(_events.c.seq)
                .where(_events.c.occurred_at >= since, _events.c.occurred_at < until)
                .order_by(_events.c.seq)
                .limit(MAX_REPLAYED + 1)
            ).scalars()
        )
        if len(seqs) > MAX_REPLAYED:
            raise ReplayRefused(
                "too_many_events", f"more than {MAX_REPLAYED} events; replay a narrower range"
            )
        return len(seqs), sorted(_requeue(conn, [int(s) for s in seqs], endpoint_id, at))

    return unit_of_work.transact(engine, work)
