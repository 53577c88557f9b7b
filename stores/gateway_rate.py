"""The gateway request budget every worker and API process shares, one row per second.

Stripe limits an account's API requests per second (about 100 in live mode, 25 in test
mode), whichever process sends them. Each process takes requests from the current
second's row in batches (``take``): a row lock serializes the takers, so the processes
together never take more than the limit in one second. The table is made by revision
``0010_gateway_rate``; rows older than a few minutes are deleted as new ones are taken.

Repository functions take an open ``Connection`` and never commit: the caller owns the
transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete, select, update

from ledger.db import insert_or_ignore
from stores.tables import gateway_rate_windows as _w

KEEP_SECONDS = 300


def take(conn: Connection, *, window_start: int, want: int, limit: int) -> int:
    """Up to ``want`` requests of second ``window_start``'s ``limit``; how many were
    granted (0 when the second's budget is spent)."""
    if want < 1 or limit < 1:
        raise ValueError("want and limit must be positive")
    conn.execute(
        insert_or_ignore(conn, _w)
        .values(window_start=window_start, used=0)
        .on_conflict_do_nothing(index_elements=["window_start"])
    )
    query = select(_w.c.used).where(_w.c.window_start == window_start)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    used = int(conn.execute(query).scalar_one())
    granted = max(0, min(want, limit - used))
    if granted:
        conn.execute(
            update(_w).where(_w.c.window_start == window_start).values(used=_w.c.used + granted)
        )
    if window_start % 60 == 0:  # once a minute is often enough to keep the table small
        conn.execute(delete(_w).where(_w.c.window_start < window_start - KEEP_SECONDS))
    return granted


def used(conn: Connection, window_start: int) -> int:
    """Requests taken in second ``window_start`` (0 when none)."""
    found = conn.execute(select(_w.c.used).where(_w.c.window_start == window_start)).scalar()
    return int(found or 0)
