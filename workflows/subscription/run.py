"""One run of a subscription workflow: what every concern module works on.

The run holds the carried state, the lock that serializes everything that awaits
activities (portal updates, the period close, watchers' gateway work), the generation
the run follows, what ops see (the publisher) and the background work it started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.subscription.generations import Generation
from workflows.subscription.publishing import Publisher

with workflow.unsafe.imports_passed_through():
    from billing.lifecycle import Trigger, transition
    from workflows.subscription.state import SubscriptionState

DB_TIMEOUT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
GATEWAY_READ_TIMEOUT = timedelta(seconds=60)

_Param = TypeVar("_Param")
_Result = TypeVar("_Result")


class Run:
    def __init__(self, state: SubscriptionState, generation: Generation) -> None:
        self.state = state
        self.generation = generation
        self.lock = asyncio.Lock()
        self.publisher = Publisher(state, generation)
        # Set to wake the main loop early: it re-checks the period end and the status.
        self.wake = False
        self.watchers: list[asyncio.Task[None]] = []
        self.live_children: set[str] = set()  # dunning children this run started
        self.continue_due = False  # a period boundary passed while children ran
        # Decides the outbound events of a change (``outbound.observe``, generation 5
        # on), and the instants its access timers are armed for.
        self.on_change: Callable[[datetime], None] | None = None
        self.access_timers: set[datetime] = set()

    def patched(self, patch_id: str) -> bool:
        return self.generation.patched(patch_id)

    def watch(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background for the rest of this run."""
        self.watchers.append(asyncio.create_task(work))

    def apply(self, trigger: Trigger, at: datetime) -> None:
        """Move the subscription through its lifecycle and show ops the new status."""
        state = self.state
        state.status, record = transition(state.status, trigger, at)
        state.transitions.append(record)
        state.last_event = f"{record.from_status} → {record.to_status} ({trigger})"
        self.publisher.publish_now()
        self.changed(at)

    def changed(self, at: datetime | None = None) -> None:
        """The subscription changed (at ``at``, default now): decide its events."""
        if self.on_change is not None:
            self.on_change(at or workflow.now())

    def publish(self, next_timer: str) -> None:
        self.publisher.publish(next_timer)

    def publish_now(self) -> None:
        self.publisher.publish_now()
        self.changed()

    async def step(
        self, activity: Callable[[Any, _Param], Awaitable[_Result]], arg: _Param
    ) -> _Result:
        """A short database step of invoicing: a local activity in runs of the baseline
        (no activity task round trip through the server, one marker in history), a
        normal one before."""
        if self.generation.baseline:
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=RETRY
            )
        return await workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=DB_TIMEOUT, retry_policy=RETRY
        )
