"""The subscription workflow's outbound events, against the time-skipping server:
decided with the change, in the outbox once, access changes exactly at their instant
from the workflow's own timers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from billing.dunning import load_policy
from billing.lifecycle import SubscriptionStatus
from billing.periods import period_end
from ledger.outbound import reads
from tests.workflows.harness import FAILS_WHEN_CHARGED, Billing, eventually, record_history
from tests.workflows.test_subscription_dunning import in_dunning
from workflows.subscription import SubscriptionWorkflow

ENTERPRISE = load_policy("enterprise", 1)


async def events_until(
    billing: Billing, subscription_id: str, last_type: str, timeout: float = 15.0
) -> list[reads.StoredEvent]:
    """The subscription's events once ``last_type`` is among them (activities write them
    in real time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await asyncio.to_thread(
            reads.list_events, billing.store.engine, subscription_id=subscription_id, limit=500
        )
        if any(e.type == last_type for e in found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no {last_type}; events: {[e.type for e in found]}")
        await asyncio.sleep(0.05)


def at_of(events: list[reads.StoredEvent], event_type: str) -> datetime:
    (event,) = [e for e in events if e.type == event_type]
    return event.occurred_at


async def test_cancellation_at_period_end_revokes_access_exactly_at_the_boundary(
    billing: Billing,
) -> None:
    start = await billing.soon()
    boundary = period_end(start, start, "month")
    handle = await billing.subscribe(start_at=start)
    subscription_id = handle.id.removeprefix("subscription-")
    await billing.sleep_until(start + timedelta(minutes=1))
    await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    await handle.execute_update(SubscriptionWorkflow.cancel_at_period_end)
    await billing.sleep_until(boundary + timedelta(hours=1))
    await eventually(handle, lambda s: s.status is SubscriptionStatus.CANCELED)
    events = await events_until(billing, subscription_id, "subscription.canceled")

    types = [e.type for e in events]
    assert types[0] == "subscription.created"
    assert types.index("access.granted") < types.index("access.revoked")
    assert {"invoice.finalized", "invoice.paid"} <= set(types)
    assert types.count("access.revoked") == 1 and types.count("access.granted") == 1
    assert at_of(events, "access.revoked") == boundary, "exactly at the period end"
    assert at_of(events, "subscription.canceled") == boundary
    revoked = next(e for e in events if e.type == "access.revoked")
    assert revoked.data["object"]["has_access"] is False
    assert revoked.data["object"]["access_reason"] == "canceled"
    cancel_asked = [
        e for e in events if e.type == "subscription.updated" and e.occurred_at < boundary
    ]
    assert cancel_asked and cancel_asked[-1].data["object"]["cancel_at_period_end"] is True
    assert len({e.id for e in events}) == len(events)
    await record_history(handle, "subscription_outbound_cancel")


async def test_failed_dunning_emits_dunning_ended_then_access_revoked_at_the_grace_end(
    billing: Billing,
) -> None:
    """The enterprise policy's retries run out before its grace period does, and its end
    action leaves the subscription past due: no transition marks the grace end, the
    workflow's own access timer does."""
    handle, state, _view = await in_dunning(billing, segment="enterprise")
    (unpaid,) = state.unpaid_invoices
    grace_end = unpaid.recorded_at + ENTERPRISE.grace_period
    assert state.grace_until == grace_end
    await billing.sleep_until(grace_end - timedelta(hours=1))
    ended = await events_until(billing, state.subscription_id, "dunning.ended")
    assert "access.revoked" not in [e.type for e in ended], "access lasts to the grace end"

    await billing.sleep_until(grace_end + timedelta(hours=1))
    events = await events_until(billing, state.subscription_id, "access.revoked")
    types = [e.type for e in events]
    assert [t for t in types if t.startswith(("dunning.", "access.revoked"))] == [
        "dunning.started",
        "dunning.ended",
        "access.revoked",
    ]
    assert types.index("invoice.payment_failed") < types.index("dunning.started")
    assert at_of(events, "access.revoked") == grace_end, "exactly at the grace end"
    revoked = next(e for e in events if e.type == "access.revoked")
    assert revoked.data["object"]["access_reason"] == "past_due"
    dunning_ended = next(e for e in events if e.type == "dunning.ended")
    assert dunning_ended.occurred_at < grace_end
    assert dunning_ended.data["object"]["invoice_id"] == unpaid.invoice_id
    still = await handle.query(SubscriptionWorkflow.state)
    assert still.status is SubscriptionStatus.PAST_DUE, "the policy leaves it past due"
    assert len({e.id for e in events}) == len(events)


async def test_renewals_on_a_failing_card_say_payment_failed_once_per_invoice(
    billing: Billing,
) -> None:
    handle, state, _ = await in_dunning(billing)
    events = await events_until(billing, state.subscription_id, "dunning.started")
    failed = [e for e in events if e.type == "invoice.payment_failed"]
    assert [e.data["object"]["id"] for e in failed] == [state.unpaid_invoices[0].invoice_id]
    assert FAILS_WHEN_CHARGED
    past_due = [e for e in events if e.type == "subscription.updated"][-1]
    assert past_due.data["object"]["status"] == "past_due"
    assert past_due.data["object"]["access_reason"] == "past_due_in_grace"
    assert handle.id.endswith(state.subscription_id)
