"""The outbound request limit of the gateway adapter, shared by every process.

``SharedRateLimit.acquire`` is awaited before each gateway request. It hands out
requests from a local batch for the current second and, when the batch is used up,
takes another batch of the second's budget from the shared store
(``stores.gateway_rate.take``, one short transaction); when the second's budget is
spent everywhere, it waits for the next second. Every worker and API process taking
from the same database stays, all together, under the account's limit, including the
renewal's first charge, which runs as a local activity (no task queue limit applies to
it). A 429 that still comes back is retried as its ``Stripe-Should-Retry`` header says
(``activities.gateway_errors``).

The limit is ``DUNWELL_GATEWAY_REQUESTS_PER_SECOND`` (the default fits Stripe's live mode
with headroom; test mode allows 25). 0 turns the limit off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import Engine

from stores import gateway_rate

# Stripe's documented limits: 100 read and write operations per second in live mode, 25
# in test mode. The default leaves a tenth for the dashboard and other clients.
DEFAULT_REQUESTS_PER_SECOND = 90

Take = Callable[[int, int, int], int]  # (second, want, limit) -> granted


def store_take(engine: Engine) -> Take:
    """Take from the shared store on ``engine``."""

    def take(window_start: int, want: int, limit: int) -> int:
        with engine.begin() as conn:
            return gateway_rate.take(conn, window_start=window_start, want=want, limit=limit)

    return take


class SharedRateLimit:
    def __init__(
        self,
        take: Take,
        per_second: int,
        *,
        batch: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be positive")
        self._take = take
        self.per_second = per_second
        # Small batches keep one busy process from holding a second's budget idle.
        self._batch = batch or max(1, per_second // 10)
        self._clock = clock
        self._sleep = sleep
        self._window = -1
        self._left = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may be sent, and count it."""
        async with self._lock:  # one taker at a time in this process
            while True:
                now = self._clock()
                window = int(now)
                if window != self._window:
                    self._window, self._left = window, 0
                if self._left == 0:
                    want = min(self._batch, self.per_second)
                    self._left = await asyncio.to_thread(self._take, window, want, self.per_second)
                    if int(self._clock()) != window:
                        # The second ended while the budget was being taken: a grant for
                        # a past second would be spent in the next one, over its limit.
                        continue
                if self._left > 0:
                    self._left -= 1
                    return
                await self._sleep(window + 1 - now)
