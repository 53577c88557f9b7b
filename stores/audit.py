"""The audit log: every ops action and every portal-session mint, append-only.

A row says who acted (the API key's id, never its secret), what they did (``action``,
e.g. ``dunning.end``), to what (``target``, e.g. ``invoice:in_123``), how it ended
(``outcome``: ``done``, or the refusal's code), the state before and after where there
is one (JSON), when (UTC) and the request's id if the caller sent one. The database
refuses UPDATE and DELETE on the table (``0014_audit_log``), so a row, once committed,
stays as written.

A change that is a database write records its row through ``record`` on the same
connection, so both commit or neither does. Functions here run inside the caller's
transaction and never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from stores.tables import audit_log

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What one row says; ``before``/``after`` are JSON values."""

    actor: str
    action: str
    target: str
    outcome: str = "done"
    before: Any = None
    after: Any = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    before: Any
    after: Any
    request_id: str | None


def record(conn: Connection, entry: AuditEntry, *, at: datetime) -> int:
    """Append ``entry``; its id."""
    if at.tzinfo is None or at.utcoffset() != UTC.utcoffset(at):
        raise ValueError("audit times are aware UTC datetimes")
    row_id = conn.execute(
        insert(audit_log)
        .values(
            at=at,
            actor=entry.actor,
            action=entry.action,
            target=entry.target,
            outcome=entry.outcome,
            before=entry.before,
            after=entry.after,
            request_id=entry.request_id,
        )
        .returning(audit_log.c.id)
    ).scalar_one()
    return int(row_id)


def list_entries(
    conn: Connection,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[AuditRow]:
    """Rows oldest first, ``limit`` at a time after ``after_id``, filtered by what is given
    (``since`` inclusive, ``until`` exclusive)."""
    query = select(audit_log).where(audit_log.c.id > after_id)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    if target is not None:
        query = query.where(audit_log.c.target == target)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    if until is not None:
        query = query.where(audit_log.c.at < until)
    rows = conn.execute(query.order_by(audit_log.c.id).limit(min(limit, MAX_PAGE))).mappings()
    return [AuditRow(**dict(row)) for row in rows]
