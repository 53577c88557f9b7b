"""One transaction per call, rollback by default, retried when it loses a race.

Serialization failures and deadlocks (PostgreSQL) or a locked database (SQLite) are
retried a bounded number of times with jittered exponential backoff; callers see
``LedgerBusyError`` only when contention outlasts the retries. Any other error rolls
the transaction back and propagates.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ledger.db import READ_ONLY, is_retryable
from ledger.errors import LedgerBusyError

T = TypeVar("T")

MAX_ATTEMPTS = 8
_BACKOFF_BASE_S = 0.005


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run ``work`` on a read-only connection; nothing it does is kept."""
    with engine.connect().execution_options(**READ_ONLY) as conn:
        try:
            return work(conn)
        finally:
            conn.rollback()


def transact(
    engine: Engine, work: Callable[[Connection], T], *, max_attempts: int = MAX_ATTEMPTS
) -> T:
    """Run ``work`` in one transaction, committed only if it returns."""
    for attempt in range(1, max_attempts + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if not is_retryable(exc):
                raise
            if attempt == max_attempts:
                raise LedgerBusyError(f"gave up after {attempt} attempts under contention") from exc
            time.sleep(random.uniform(0, _BACKOFF_BASE_S * 2**attempt))
    raise AssertionError("unreachable")
