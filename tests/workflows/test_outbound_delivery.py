"""Delivery of outbound events to a real receiver (uvicorn, verifying every signature),
driven by the endpoint's delivery workflow on the time-skipping server: in order per
subscription, at least once with one id per event, retried through an hour of
downtime, given up after three days (endpoint failing, ops alert, events still
accumulating), signed by both secrets during a rotation's overlap, and protected
against slow, huge and redirecting receivers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.outbound_delivery import OutboundDeliveryActivities
from ledger import unit_of_work
from ledger.outbound import OutboxEvent, endpoints, outbox, reads
from ledger.outbound.delivery import BODY_KEPT
from ledger.outbound.tables import outbound_attempts, outbound_deliveries
from tests.support.receiver import Receiver
from tests.workflows.harness import record_history
from workflows.outbound_delivery import (
    DeliveryInput,
    OutboundDeliveryWorkflow,
    delivery_workflow_id,
)
from workflows.search_attributes import OUTBOUND_ALERT

TYPES = ["subscription.updated", "invoice.paid", "access.revoked"]


@asynccontextmanager
async def delivering(
    env: WorkflowEnvironment, engine: Engine, endpoint_id: str, *, timeout: float = 5.0
) -> AsyncIterator[WorkflowHandle[OutboundDeliveryWorkflow, None]]:
    task_queue = f"out-{uuid.uuid4().hex[:10]}"
    # No long poll (it would hold the time-skipping clock); a round every 10 minutes of
    # workflow time when idle, and the test wakes the workflow as a replay would.
    acts = OutboundDeliveryActivities(engine, allow_loopback=True, timeout=timeout, long_poll=0)
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[OutboundDeliveryWorkflow],
        activities=[acts.deliver_due],
        workflow_runner=SandboxedWorkflowRunner(),
    ):
        handle = await env.client.start_workflow(
            OutboundDeliveryWorkflow.run,
            DeliveryInput(endpoint_id, idle_poll_seconds=600),
            id=delivery_workflow_id(endpoint_id),
            task_queue=task_queue,
        )
        try:
            yield handle
        finally:
            await handle.terminate()
            await acts.close()


def register(engine: Engine, url: str, at: datetime) -> tuple[str, str]:
    made, secret = endpoints.register(engine, url=url, event_types=TYPES, description="", at=at)
    return made.id, secret


def emit(engine: Engine, subscription_id: str, n: int, at: datetime) -> OutboxEvent:
    event = OutboxEvent(
        key=f"test:{subscription_id}:{n}:{uuid.uuid4().hex}",
        type=TYPES[n % len(TYPES)],
        occurred_at=at,
        data={"subscription_id": subscription_id, "n": n},
        subscription_id=subscription_id,
    )
    unit_of_work.transact(engine, lambda conn: outbox.record(conn, [event], at=at))
    return event


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)


def mine(engine: Engine, endpoint_id: str, event_id: str) -> reads.DeliveryRow:
    """The event's delivery to this test's endpoint (the database is shared)."""
    (row,) = [d for d in reads.deliveries_of(engine, event_id) if d.endpoint_id == endpoint_id]
    return row


def attempts_of(engine: Engine, endpoint_id: str) -> list[dict[str, object]]:
    query = (
        select(outbound_attempts)
        .join(outbound_deliveries, outbound_deliveries.c.id == outbound_attempts.c.delivery_id)
        .where(outbound_deliveries.c.endpoint_id == endpoint_id)
        .order_by(outbound_attempts.c.id)
    )
    return unit_of_work.read(engine, lambda c: [dict(r._mapping) for r in c.execute(query)])


async def test_an_hour_down_then_every_event_in_order_once_after_dedupe(
    temporal_time_env: WorkflowEnvironment, billing_engine: Engine
) -> None:
    env, engine = temporal_time_env, billing_engine
    now = await env.get_current_time()
    receiver = Receiver(secrets=[])
    endpoint_id, secret = register(engine, receiver.url, now)
    receiver.secrets.append(secret)
    subscriptions = [f"sub_{uuid.uuid4().hex[:8]}" for _ in range(5)]
    sent = {s: [emit(engine, s, n, now).id for n in range(6)] for s in subscriptions}

    async with delivering(env, engine, endpoint_id) as handle:
        await env.sleep(timedelta(hours=1))  # nobody listens
        failed = attempts_of(engine, endpoint_id)
        assert failed and all(a["status_code"] is None and a["error"] for a in failed)
        receiver.start()
        try:
            later = await env.get_current_time()
            more = {s: [emit(engine, s, 6, later).id] for s in subscriptions}
            await env.sleep(timedelta(hours=2))
            total = sum(len(v) for v in sent.values()) + len(more)
            await until(lambda: len(receiver.unique_ids()) == total)
        finally:
            receiver.stop()
        progress = await handle.query(OutboundDeliveryWorkflow.progress)
        await record_history(handle, "outbound_delivery")

    assert receiver.refused == 0, "every signature verified"
    for subscription_id in subscriptions:
        arrived = [r.event_id for r in receiver.received if r.subscription_id == subscription_id]
        assert list(dict.fromkeys(arrived)) == sent[subscription_id] + more[subscription_id]
    assert progress.delivered == sum(len(v) for v in sent.values()) + len(more)
    head, *queued = [mine(engine, endpoint_id, e) for e in sent[subscriptions[0]]]
    assert head.status == "delivered" and head.attempts >= 2 and head.last_status_code == 200
    # Behind a failing head nothing of its subscription was tried: one attempt each.
    assert all(row.status == "delivered" and row.attempts == 1 for row in queued)


async def test_three_days_down_marks_the_endpoint_failing_and_events_accumulate(
    temporal_time_env: WorkflowEnvironment, billing_engine: Engine
) -> None:
    env, engine = temporal_time_env, billing_engine
    now = await env.get_current_time()
    receiver = Receiver(secrets=[])
    endpoint_id, secret = register(engine, receiver.url, now)
    receiver.secrets.append(secret)
    first = emit(engine, "sub_failing", 0, now)
    async with delivering(env, engine, endpoint_id) as handle:
        await env.sleep(timedelta(days=3, hours=7))
        assert endpoints.get(engine, endpoint_id).status == "failing"
        shown = (await handle.describe()).typed_search_attributes
        assert shown.get(OUTBOUND_ALERT) == "failing"
        tried = len(attempts_of(engine, endpoint_id))
        assert 5 <= tried <= 40, "backoff, not a tight loop"
        later = emit(engine, "sub_failing", 1, await env.get_current_time())
        pending = mine(engine, endpoint_id, later.id)
        assert pending.status == "pending", "events keep accumulating for a failing endpoint"
        await env.sleep(timedelta(hours=6))
        assert len(attempts_of(engine, endpoint_id)) == tried, "no attempts while failing"

        receiver.start()
        try:
            endpoints.set_status(
                engine, endpoint_id, "enabled", reason="fixed", at=await env.get_current_time()
            )
            await handle.signal(OutboundDeliveryWorkflow.wake)
            await until(lambda: receiver.unique_ids() == [first.id, later.id])
        finally:
            receiver.stop()
        await until(lambda: True)
        shown = (await handle.describe()).typed_search_attributes
        assert shown.get(OUTBOUND_ALERT) is None


async def test_rotation_signs_with_both_secrets_during_the_overlap(
    temporal_time_env: WorkflowEnvironment, billing_engine: Engine
) -> None:
    env, engine = temporal_time_env, billing_engine
    now = await env.get_current_time()
    receiver = Receiver(secrets=[])
    endpoint_id, old = register(engine, receiver.url, now)
    receiver.secrets.append(old)
    receiver.start()
    try:
        async with delivering(env, engine, endpoint_id) as handle:
            before = emit(engine, "sub_rot", 0, now)
            await handle.signal(OutboundDeliveryWorkflow.wake)
            await until(lambda: receiver.unique_ids() == [before.id])
            new, _until = endpoints.rotate_secret(
                engine, endpoint_id, overlap=timedelta(hours=1), at=await env.get_current_time()
            )
            receiver.secrets[:] = [new]  # the receiver switched at once
            during = emit(engine, "sub_rot", 1, await env.get_current_time())
            await handle.signal(OutboundDeliveryWorkflow.wake)
            await until(lambda: receiver.unique_ids() == [before.id, during.id])
            receiver.secrets[:] = [old]  # a receiver that never switched
            await env.sleep(timedelta(hours=2))
            after = emit(engine, "sub_rot", 2, await env.get_current_time())
            await handle.signal(OutboundDeliveryWorkflow.wake)
            await until(lambda: receiver.refused >= 1)
            assert after.id not in receiver.unique_ids(), "the old secret no longer signs"
    finally:
        receiver.stop()


async def test_slow_huge_and_redirecting_receivers(
    temporal_time_env: WorkflowEnvironment, billing_engine: Engine
) -> None:
    env, engine = temporal_time_env, billing_engine
    now = await env.get_current_time()
    receiver = Receiver(secrets=[], delay=3.0)
    endpoint_id, secret = register(engine, receiver.url, now)
    receiver.secrets.append(secret)
    receiver.start()
    try:
        async with delivering(env, engine, endpoint_id, timeout=1.0) as handle:
            receiver.mode = "slow"
            slow = emit(engine, "sub_slow", 0, now)
            await handle.signal(OutboundDeliveryWorkflow.wake)
            await until(lambda: bool(attempts_of(engine, endpoint_id)))
            (attempt,) = attempts_of(engine, endpoint_id)
            assert attempt["status_code"] is None and "timeout" in str(attempt["error"])
            assert int(str(attempt["duration_ms"])) < 2_500

            receiver.mode = "redirect"
            await env.sleep(timedelta(minutes=2))
            await until(lambda: len(attempts_of(engine, endpoint_id)) >= 2)
            redirected = attempts_of(engine, endpoint_id)[1]
            assert redirected["status_code"] == 307
            assert "not followed" in str(redirected["error"])
            assert receiver.elsewhere == 0
            pending = mine(engine, endpoint_id, slow.id)
            assert pending.status == "pending"

            receiver.mode = "huge"
            await env.sleep(timedelta(minutes=10))
            await until(lambda: mine(engine, endpoint_id, slow.id).status == "delivered")
            last = attempts_of(engine, endpoint_id)[-1]
            assert last["status_code"] == 200
            assert len(str(last["response_body"])) <= BODY_KEPT
            assert int(str(last["duration_ms"])) < 2_000, "the flood was not read to its end"
    finally:
        receiver.stop()
