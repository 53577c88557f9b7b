"""The delivery activity of an endpoint's delivery workflow: one round of sending.

A round reads the deliveries due that head their subscription
(``ledger.outbound.delivery.due``), posts them side by side (bounded concurrency; one
subscription never has two in flight), and records every attempt in one transaction.
When nothing is due it long-polls: it looks again every ``poll_every`` seconds, for up
to ``long_poll`` seconds (heartbeating), so an event written by any step reaches the
receiver within a fraction of a second without a round trip through Temporal per look.

"Due" is judged by the workflow's ``now`` plus the time the activity has run, so a retry
schedule of days runs on workflow time (a time-skipping test passes ``long_poll=0``);
the signature's timestamp is the wall clock, which is what the receiver checks it
against.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import Connection, Engine
from temporalio import activity

from activities.outbound_http import PostResult, Sender, event_body
from ledger import unit_of_work
from ledger.outbound import delivery
from ledger.outbound.delivery import DueDelivery, EndpointWork, Outcome


@dataclass(frozen=True)
class DeliverRequest:
    endpoint_id: str
    now: datetime
    limit: int = 500


@dataclass(frozen=True)
class DeliverResult:
    endpoint_status: str  # enabled, disabled, failing; "missing" for an unknown endpoint
    delivered: int
    failed: int
    gave_up: bool  # this round marked the endpoint failing
    next_due_at: datetime | None  # the earliest pending delivery, if any
    backing_off: bool = False  # a pending delivery has failed and waits out its backoff


class OutboundDeliveryActivities:
    def __init__(
        self,
        engine: Engine,
        *,
        allow_loopback: bool,
        concurrency: int = 32,
        timeout: float = 10.0,
        max_body: int = 4_096,
        long_poll: float = 20.0,
        poll_every: float = 0.1,
    ) -> None:
        self._engine = engine
        self._allow_loopback = allow_loopback
        self._concurrency = concurrency
        self._timeout = timeout
        self._max_body = max_body
        self._long_poll = long_poll
        self._poll_every = poll_every
        self._client: httpx.AsyncClient | None = None

    def _sender(self) -> Sender:
        if self._client is None:
            limits = httpx.Limits(max_connections=self._concurrency)
            self._client = httpx.AsyncClient(limits=limits, trust_env=False)
        return Sender(
            self._client,
            allow_loopback=self._allow_loopback,
            max_body=self._max_body,
            timeout=self._timeout,
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @activity.defn(name="outbound.deliver_due")
    async def deliver_due(self, request: DeliverRequest) -> DeliverResult:
        """Send what is due for the endpoint (waiting up to ``long_poll`` seconds for
        something to be); what came of it, and when more is due."""
        started = time.monotonic()
        while True:
            now = request.now + timedelta(seconds=time.monotonic() - started)
            work = await asyncio.to_thread(
                unit_of_work.read,
                self._engine,
                lambda conn, at=now: delivery.due(conn, request.endpoint_id, at, request.limit),
            )
            if work is None:
                return DeliverResult("missing", 0, 0, False, None)
            if work.due or work.status != "enabled":
                break
            if time.monotonic() - started + self._poll_every > self._long_poll:
                break
            activity.heartbeat()
            await asyncio.sleep(self._poll_every)
        outcomes = await self._post_all(work) if work.due else []

        def finish(conn: Connection) -> tuple[bool, datetime | None, bool]:
            gave_up = delivery.record(conn, request.endpoint_id, outcomes, now)
            next_due_at = delivery.next_due(conn, request.endpoint_id)
            return gave_up, next_due_at, delivery.backing_off(conn, request.endpoint_id)

        gave_up, next_due_at, backing_off = await asyncio.to_thread(
            unit_of_work.transact, self._engine, finish
        )
        delivered = sum(1 for o in outcomes if o.delivered)
        status = "failing" if gave_up else work.status
        failed = len(outcomes) - delivered
        return DeliverResult(status, delivered, failed, gave_up, next_due_at, backing_off)

    async def _post_all(self, work: EndpointWork) -> list[Outcome]:
        sender = self._sender()
        secrets = [s.secret for s in work.secrets]
        gate = asyncio.Semaphore(self._concurrency)

        async def post(item: DueDelivery) -> Outcome:
            body = event_body(item.event_id, item.event_type, item.occurred_at, item.data)
            async with gate:
                sent: PostResult = await sender.post(work.url, secrets, item.event_id, body)
            activity.heartbeat()
            return Outcome(
                delivery_id=item.delivery_id,
                attempted_at=sent.attempted_at,
                status_code=sent.status_code,
                error=sent.error,
                response_body=sent.body,
                duration_ms=sent.duration_ms,
            )

        return list(await asyncio.gather(*(post(item) for item in work.due)))
