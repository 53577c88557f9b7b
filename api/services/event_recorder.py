"""The webhook intake's writes to ``processed_events``, grouped into shared transactions.

Each accepted event needs its id committed before the acknowledgement, and a
``delivered`` mark after it. Done one request at a time, that is a thread hop, a pool
checkout and a commit (a WAL flush) per event, which under load costs more than the rest
of the request. ``GroupCommit`` runs the writes of every request that arrived while the
previous write was in flight as one transaction instead: a lone request still writes at
once, a busy intake shares commits. A request gets its answer only after the transaction
holding its row has committed, so the acknowledgement still follows a durable record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy import Engine

from stores import gateway_events
from stores.gateway_events import ReceivedEvent

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

MAX_BATCH = 200


class GroupCommit(Generic[T, R]):
    """Calls the blocking ``write(items) -> results`` (one result per item, in order) in a
    worker thread for everything submitted while the previous call was running."""

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        return await self._enqueue(item)

    def submit_nowait(self, item: T, on_error: Callable[[BaseException], None]) -> None:
        """Queue ``item`` for the next write without waiting for it; a failure goes to
        ``on_error``."""
        future = self._enqueue(item)
        future.add_done_callback(
            lambda done: on_error(error) if (error := done.exception()) is not None else None
        )

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or has failed)."""
        while self._drainer is not None:
            await asyncio.wait([self._drainer])

    def _enqueue(self, item: T) -> asyncio.Future[R]:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                items = [item for item, _ in batch]
                try:
                    outcomes = await asyncio.to_thread(self._write_batch, items)
                except Exception as err:  # the thread could not run it at all
                    outcomes = [_Failed(err)] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if future.done():  # its request was cancelled meanwhile
                        continue
                    if isinstance(outcome, _Failed):
                        future.set_exception(outcome.error)
                    else:
                        future.set_result(outcome.result)
        finally:
            self._drainer = None

    def _write_batch(self, items: Sequence[T]) -> list[_Done[R] | _Failed]:
        try:
            return [_Done(result) for result in self._write(items)]
        except Exception as err:
            if len(items) == 1:
                return [_Failed(err)]
        # One bad item must not fail its neighbours: write them one by one.
        log.warning("a grouped write of %d items failed; writing them singly", len(items))
        return [outcome for item in items for outcome in self._write_batch([item])]


class _Done(Generic[R]):
    __slots__ = ("result",)

    def __init__(self, result: R) -> None:
        self.result = result


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


@dataclass(frozen=True)
class _Delivered:
    event_id: str


class EventRecorder:
    """Records routable events (with their delivery claims) and marks them delivered.

    Both go through one ``GroupCommit``: a transaction carries the new records of the
    requests waiting for it and the ``delivered`` marks of those already answered.
    """

    def __init__(self, engine: Engine, *, lease: timedelta) -> None:
        self._engine = engine
        self._lease = lease
        self._writes: GroupCommit[ReceivedEvent | _Delivered, bool] = GroupCommit(self._write)

    async def record_or_claim(self, event: ReceivedEvent) -> bool:
        """True when this request must deliver: it recorded the event, or it took over a
        ``received`` row whose earlier delivery failed or was abandoned."""
        return await self._writes.submit(event)

    def mark_delivered_soon(self, event_id: str) -> None:
        """Mark ``event_id`` delivered with the next grouped write, without waiting: a
        lost mark only means its claim expires, and a redelivery is signalled again."""
        self._writes.submit_nowait(
            _Delivered(event_id),
            lambda err: log.warning("could not mark event %s delivered: %s", event_id, err),
        )

    async def flush(self) -> None:
        """Write the marks still queued (at shutdown)."""
        await self._writes.flush()

    def _write(self, items: Sequence[ReceivedEvent | _Delivered]) -> list[bool]:
        records = [item for item in items if isinstance(item, ReceivedEvent)]
        delivered = {item.event_id for item in items if isinstance(item, _Delivered)}
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            if not records:
                # Only delivered marks: losing them in a crash is harmless (see
                # ``gateway_events.skip_commit_flush``).
                gateway_events.skip_commit_flush(conn)
            mine = gateway_events.record_or_claim_many(conn, records, now=now, lease=self._lease)
            gateway_events.mark_delivered_many(conn, delivered, now=now)
        results = []
        for item in items:
            # A repeated id goes to its first request only.
            results.append(isinstance(item, ReceivedEvent) and item.event_id in mine)
            if isinstance(item, ReceivedEvent):
                mine.discard(item.event_id)
        return results
