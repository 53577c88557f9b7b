"""Customer notifications: one row per idempotency key, written before the email goes out.

The row is both the send-once guard for email and what the portal shows the customer.
Its ``status``:

- ``pending``: recorded, the email may or may not have reached the SMTP relay (a worker
  can die between handing the message over and marking it sent). A retry finds
  ``pending`` and sends again under the same ``Message-ID``, so the only duplicate
  possible is one a receiving system can drop by that header. At-least-once is the best
  SMTP allows: the relay's acceptance and this row cannot commit together.
- ``sent``: the relay accepted it. A retry finds ``sent`` and does nothing.

Functions take an engine and run one short transaction each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import (
    Connection,
    Engine,
    select,
    update,
)

from ledger.db import READ_ONLY, insert_or_ignore
from stores.tables import notifications

NotificationStatus = Literal["pending", "sent"]


@dataclass(frozen=True)
class NotificationRow:
    key: str
    customer_id: str
    subscription_id: str | None
    invoice_id: str | None
    kind: str
    recipient: str
    subject: str
    body: str
    message_id: str
    status: NotificationStatus
    send_attempts: int
    created_at: datetime
    sent_at: datetime | None
    dismissed_at: datetime | None = None


@dataclass(frozen=True)
class NewNotification:
    key: str
    customer_id: str
    subscription_id: str | None
    invoice_id: str | None
    kind: str
    recipient: str
    subject: str
    body: str
    message_id: str


def _insert_if_absent(conn: Connection, values: dict[str, object]) -> None:
    conn.execute(insert_or_ignore(conn, notifications).values(**values).on_conflict_do_nothing())


def _row(conn: Connection, key: str) -> NotificationRow:
    found = conn.execute(select(notifications).where(notifications.c.key == key)).mappings().one()
    return NotificationRow(**dict(found))


def record_pending(engine: Engine, new: NewNotification, *, now: datetime) -> NotificationRow:
    """Record the notification unless its key exists, and count one send attempt if it is
    still pending; returns the stored row (whose content wins over ``new``)."""
    with engine.begin() as conn:
        _insert_if_absent(
            conn,
            {
                "key": new.key,
                "customer_id": new.customer_id,
                "subscription_id": new.subscription_id,
                "invoice_id": new.invoice_id,
                "kind": new.kind,
                "recipient": new.recipient,
                "subject": new.subject,
                "body": new.body,
                "message_id": new.message_id,
                "status": "pending",
                "send_attempts": 0,
                "created_at": now,
            },
        )
        conn.execute(
            update(notifications)
            .where(notifications.c.key == new.key, notifications.c.status == "pending")
            .values(send_attempts=notifications.c.send_attempts + 1)
        )
        return _row(conn, new.key)


def mark_sent(engine: Engine, key: str, *, now: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.key == key, notifications.c.status == "pending")
            .values(status="sent", sent_at=now)
        )


def get_notification(engine: Engine, key: str) -> NotificationRow | None:
    with engine.connect().execution_options(**READ_ONLY) as conn:
        found = (
            conn.execute(select(notifications).where(notifications.c.key == key)).mappings().first()
        )
        return NotificationRow(**dict(found)) if found is not None else None


def notifications_for_customer(
    engine: Engine, customer_id: str, *, limit: int = 100, include_dismissed: bool = True
) -> list[NotificationRow]:
    """The customer's notifications, newest first (the portal lists the undismissed)."""
    query = select(notifications).where(notifications.c.customer_id == customer_id)
    if not include_dismissed:
        query = query.where(notifications.c.dismissed_at.is_(None))
    with engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(
            query.order_by(notifications.c.created_at.desc(), notifications.c.key).limit(limit)
        ).mappings()
        return [NotificationRow(**dict(row)) for row in rows]


def dismiss(engine: Engine, customer_id: str, key: str, *, now: datetime) -> bool:
    """Mark the customer's notification dismissed (once; a repeat keeps the first time).
    False when the customer has no notification with that key."""
    with engine.begin() as conn:
        found = conn.execute(
            select(notifications.c.dismissed_at).where(
                notifications.c.key == key, notifications.c.customer_id == customer_id
            )
        ).first()
        if found is None:
            return False
        conn.execute(
            update(notifications)
            .where(notifications.c.key == key, notifications.c.dismissed_at.is_(None))
            .values(dismissed_at=now)
        )
        return True
