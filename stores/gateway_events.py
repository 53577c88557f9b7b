"""Processed and parked gateway events: the intake's dedupe table and ops' staging table.

A ``processed_events`` row exists for every event id that passed signature checks, with
the raw body kept for audit. Its ``status``:

- ``received``: recorded, not yet handed to the subscription workflow. The request that
  inserted the row holds a delivery *claim* (``claimed_until``); a retry of the same
  event finds the row ``received`` and, once no live claim is held, claims it and
  signals again (the workflow ignores an event id it has seen). A failed signal
  releases the claim; a crashed process's claim simply expires.
- ``delivered``: the signal was accepted by Temporal. Terminal; a retry is a duplicate.
- ``parked``: unroutable; a ``parked_events`` row says why. Terminal for the intake.

Functions here run inside the caller's transaction and never commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, cast

from sqlalchemy import (
    Connection,
    Table,
    Update,
    bindparam,
    or_,
    select,
    text,
    update,
)

from ledger.db import insert_or_ignore
from stores.tables import parked_events, processed_events

EventStatus = Literal["received", "delivered", "parked"]


@dataclass(frozen=True)
class ParkedRow:
    id: int
    event_id: str
    source: str
    event_type: str
    object_type: str | None
    object_id: str | None
    subscription_id: str | None
    reason: str
    parked_at: datetime


def _insert_ignoring_duplicates(conn: Connection, table: Table, values: dict[str, object]) -> bool:
    """Insert unless the primary/unique key exists; whether a row was inserted."""
    # RETURNING, not rowcount: drivers may report -1 for an INSERT.
    key = next(iter(table.primary_key.columns))
    statement = insert_or_ignore(conn, table).values(**values).on_conflict_do_nothing()
    return conn.execute(statement.returning(key)).first() is not None


@dataclass(frozen=True)
class ReceivedEvent:
    """A routable event as the intake records it."""

    event_id: str
    source: str
    event_type: str
    subscription_id: str | None  # None: an event no subscription owns (a payout's)
    raw_body: str


def _received_row(
    event: ReceivedEvent, now: datetime, claimed_until: datetime
) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "source": event.source,
        "event_type": event.event_type,
        "subscription_id": event.subscription_id,
        "status": "received",
        "raw_body": event.raw_body,
        "received_at": now,
        "claimed_until": claimed_until,
        "delivery_attempts": 1,
    }


def _claim(now: datetime, lease: timedelta) -> Update:
    """Claim ``received`` rows nobody is delivering right now (add the id condition)."""
    return (
        update(processed_events)
        .where(
            processed_events.c.status == "received",
            or_(
                processed_events.c.claimed_until.is_(None),
                processed_events.c.claimed_until < now,
            ),
        )
        .values(
            claimed_until=now + lease,
            delivery_attempts=processed_events.c.delivery_attempts + 1,
        )
    )


def record_received(
    conn: Connection,
    *,
    event_id: str,
    source: str,
    event_type: str,
    subscription_id: str,
    raw_body: str,
    now: datetime,
    lease: timedelta,
) -> bool:
    """Record a routable event, claimed for delivery by the caller; False if already known."""
    event = ReceivedEvent(event_id, source, event_type, subscription_id, raw_body)
    return _insert_ignoring_duplicates(
        conn, processed_events, _received_row(event, now, now + lease)
    )


def record_or_claim_many(
    conn: Connection, events: Sequence[ReceivedEvent], *, now: datetime, lease: timedelta
) -> set[str]:
    """Record routable events in two statements; the ids the caller must deliver.

    An id is returned when its row was inserted now (claimed by the caller), or when it
    was already ``received`` with no live claim and is claimed now, as
    ``claim_for_delivery`` does. The caller hands each returned id to one request only:
    ``events`` may repeat an id.
    """
    if not events:
        return set()
    claimed_until = now + lease
    unique: dict[str, ReceivedEvent] = {}
    for event in events:
        unique.setdefault(event.event_id, event)
    if conn.dialect.name == "postgresql":
        inserted = _insert_received_unnest(conn, list(unique.values()), now, claimed_until)
    else:
        inserted = _insert_received_rows(conn, list(unique.values()), now, claimed_until)
    known = [event_id for event_id in unique if event_id not in inserted]
    if not known:
        return inserted
    taken = conn.execute(
        _claim(now, lease)
        .where(processed_events.c.event_id.in_(known))
        .returning(processed_events.c.event_id)
    ).scalars()
    return inserted | set(taken)


# One array per column, so the statement and its parameters are the same shape for any
# number of rows: PostgreSQL plans it once and the driver sends five arrays, where a
# multi-row VALUES costs the ORM layer work for every row.
_INSERT_RECEIVED_UNNEST = text(
    """
    INSERT INTO processed_events (event_id, source, event_type, subscription_id, status,
                                  raw_body, received_at, claimed_until, delivery_attempts)
    SELECT e.event_id, e.source, e.event_type, e.subscription_id, 'received',
           e.raw_body, :received_at, :claimed_until, 1
    FROM unnest(CAST(:event_ids AS varchar[]), CAST(:sources AS varchar[]),
                CAST(:event_types AS varchar[]), CAST(:subscription_ids AS varchar[]),
                CAST(:raw_bodies AS text[]))
         AS e(event_id, source, event_type, subscription_id, raw_body)
    ON CONFLICT DO NOTHING
    RETURNING event_id
    """
)


def _insert_received_unnest(
    conn: Connection, events: Sequence[ReceivedEvent], now: datetime, claimed_until: datetime
) -> set[str]:
    result = conn.execute(
        _INSERT_RECEIVED_UNNEST,
        {
            "event_ids": [e.event_id for e in events],
            "sources": [e.source for e in events],
            "event_types": [e.event_type for e in events],
            "subscription_ids": [e.subscription_id for e in events],
            "raw_bodies": [e.raw_body for e in events],
            "received_at": now,
            "claimed_until": claimed_until,
        },
    )
    return set(result.scalars())


def _insert_received_rows(
    conn: Connection, events: Sequence[ReceivedEvent], now: datetime, claimed_until: datetime
) -> set[str]:
    rows = [_received_row(e, now, claimed_until) for e in events]
    statement = (
        insert_or_ignore(conn, processed_events)
        .on_conflict_do_nothing()
        .returning(processed_events.c.event_id)
    )
    return set(conn.execute(statement, rows).scalars())


def record_parked(
    conn: Connection,
    *,
    event_id: str,
    source: str,
    event_type: str,
    object_type: str | None,
    object_id: str | None,
    subscription_id: str | None,
    reason: str,
    raw_body: str,
    now: datetime,
) -> bool:
    """Record an unroutable event and park it for ops; False if the event id is known."""
    inserted = _insert_ignoring_duplicates(
        conn,
        processed_events,
        {
            "event_id": event_id,
            "source": source,
            "event_type": event_type,
            "subscription_id": subscription_id,
            "status": "parked",
            "raw_body": raw_body,
            "received_at": now,
        },
    )
    if inserted:
        conn.execute(
            parked_events.insert().values(
                event_id=event_id,
                source=source,
                event_type=event_type,
                object_type=object_type,
                object_id=object_id,
                subscription_id=subscription_id,
                reason=reason,
                parked_at=now,
            )
        )
    return inserted


def claim_for_delivery(conn: Connection, event_id: str, *, now: datetime, lease: timedelta) -> bool:
    """Claim a ``received`` event nobody is delivering right now; whether the claim held."""
    result = conn.execute(_claim(now, lease).where(processed_events.c.event_id == event_id))
    return result.rowcount == 1


def mark_delivered(conn: Connection, event_id: str, *, now: datetime) -> None:
    conn.execute(
        update(processed_events)
        .where(processed_events.c.event_id == event_id)
        .values(status="delivered", delivered_at=now, claimed_until=None)
    )


# Built once: the intake runs it for every group of deliveries.
_MARK_DELIVERED_MANY = (
    update(processed_events)
    .where(processed_events.c.event_id.in_(bindparam("event_ids", expanding=True)))
    .values(status="delivered", delivered_at=bindparam("now"), claimed_until=None)
)


def mark_delivered_many(conn: Connection, event_ids: Collection[str], *, now: datetime) -> None:
    if event_ids:
        conn.execute(_MARK_DELIVERED_MANY, {"event_ids": list(event_ids), "now": now})


def skip_commit_flush(conn: Connection) -> None:
    """Let this transaction commit without waiting for the WAL flush (PostgreSQL only).

    Only for writes whose loss after a database crash is harmless, such as the
    ``delivered`` mark: without it a retry signals once more and the workflow drops the
    repeat. Temporal's history, not this table, is the record of delivery.
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def release_claim(conn: Connection, event_id: str) -> None:
    """Give up a delivery claim after a failed signal so the next retry may claim it."""
    conn.execute(
        update(processed_events)
        .where(processed_events.c.event_id == event_id, processed_events.c.status == "received")
        .values(claimed_until=None)
    )


def status_of(conn: Connection, event_id: str) -> EventStatus | None:
    status = conn.execute(
        select(processed_events.c.status).where(processed_events.c.event_id == event_id)
    ).scalar_one_or_none()
    return cast(EventStatus | None, status)


def list_parked(conn: Connection, *, after_id: int = 0, limit: int = 100) -> list[ParkedRow]:
    """Parked events in the order they were parked, ``limit`` at a time after ``after_id``."""
    rows = conn.execute(
        select(parked_events)
        .where(parked_events.c.id > after_id)
        .order_by(parked_events.c.id)
        .limit(limit)
    ).mappings()
    return [ParkedRow(**dict(row)) for row in rows]
