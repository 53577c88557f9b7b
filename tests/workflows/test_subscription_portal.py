"""Portal updates: cancellation at the boundary, undo, serialization, validators."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from billing.lifecycle import SubscriptionStatus, Trigger, has_access
from billing.periods import period_end
from tests.workflows.harness import Billing, eventually, record_history
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import ChangePlanRequest, SetPaymentMethodRequest


async def test_cancel_at_period_end_revokes_exactly_at_the_boundary(billing: Billing) -> None:
    start = (await billing.soon()).replace(hour=8, minute=15, second=30)
    boundary = period_end(start, start, "month")
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(days=10))
    await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)

    result = await handle.execute_update(SubscriptionWorkflow.cancel_at_period_end)
    assert (result.cancel_at_period_end, result.access_until) == (True, boundary)

    # Ops see it in the Temporal UI: current details, from the SDK's metadata query.
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "**active** on `pro-monthly`" in metadata.current_details
    assert "cancel at period end: yes" in metadata.current_details
    assert f"next timer: period end at {boundary.isoformat()}" in metadata.current_details

    await billing.sleep_until(boundary - timedelta(seconds=1))
    before = await handle.query(SubscriptionWorkflow.state)
    assert before.status is SubscriptionStatus.ACTIVE
    assert has_access(before.status, True, boundary - timedelta(seconds=1), boundary, None)

    await billing.sleep_until(boundary + timedelta(seconds=1))
    after = await eventually(handle, lambda s: s.status is SubscriptionStatus.CANCELED)
    last = after.transitions[-1]
    assert (last.from_status, last.cause, last.at) == (
        SubscriptionStatus.ACTIVE,
        Trigger.PERIOD_ENDED_CANCEL,
        boundary,
    )
    assert after.invoice_count == 1, "no renewal invoice for a canceled period"
    assert not has_access(after.status, True, boundary, boundary, None)
    final = await handle.result()
    assert final.status is SubscriptionStatus.CANCELED
    # The workflow has completed: nothing can be undone any more.
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(SubscriptionWorkflow.undo_cancellation)
    await record_history(handle, "subscription_cancel")


async def test_undo_before_the_boundary_keeps_the_subscription(billing: Billing) -> None:
    start = await billing.soon()
    boundary = period_end(start, start, "month")
    handle = await billing.subscribe(plan_id="starter-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(days=19))
    await eventually(handle, lambda s: s.invoice_count == 1)
    await handle.execute_update(SubscriptionWorkflow.cancel_at_period_end)
    undone = await handle.execute_update(SubscriptionWorkflow.undo_cancellation)
    assert undone.cancel_at_period_end is False

    await billing.sleep_until(boundary + timedelta(minutes=1))
    renewed = await eventually(handle, lambda s: s.invoice_count == 2)
    assert renewed.status is SubscriptionStatus.ACTIVE
    assert renewed.period_start == boundary


async def test_concurrent_plan_changes_run_one_after_the_other(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="starter-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(days=15))
    await eventually(handle, lambda s: s.invoice_count == 1)

    to_pro, to_business = await asyncio.gather(
        handle.execute_update(SubscriptionWorkflow.change_plan, ChangePlanRequest("pro-monthly")),
        handle.execute_update(
            SubscriptionWorkflow.change_plan, ChangePlanRequest("business-monthly")
        ),
    )
    state = await handle.query(SubscriptionWorkflow.state)
    changes = {c.to_plan: c for c in state.plan_changes}
    applied = [c for c in state.plan_changes if c.outcome == "applied"]
    # Serialized: the second change starts from the plan the first one left behind, so
    # no two proration invoices both credit the starter plan.
    assert applied[0].from_plan == "starter-monthly"
    if len(applied) == 2:
        assert applied[1].from_plan == applied[0].to_plan
        assert state.plan_id == applied[1].to_plan
        credited = [
            line.plan_id
            for change in applied
            for line in billing.store.get(change.invoice_id).lines
            if line.kind == "proration_credit"
        ]
        assert credited == ["starter-monthly", applied[0].to_plan]
    else:  # business first; pro afterwards is a downgrade, scheduled for the period end
        assert changes["pro-monthly"].outcome == "scheduled"
        assert (state.plan_id, state.pending_plan_id) == ("business-monthly", "pro-monthly")
    assert {to_pro.outcome, to_business.outcome} <= {"applied", "scheduled"}


async def update_failure(handle, update, *args) -> ApplicationError:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(update, *args)
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_validators_reject_invalid_updates_before_history(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(days=4))
    await eventually(handle, lambda s: s.invoice_count == 1)

    refusals = [
        (SubscriptionWorkflow.change_plan, ChangePlanRequest("no-such-plan"), "unknown_plan"),
        (SubscriptionWorkflow.change_plan, ChangePlanRequest("pro-monthly"), "plan_unchanged"),
        (
            SubscriptionWorkflow.set_default_payment_method,
            SetPaymentMethodRequest("card_1234"),
            "invalid_payment_method",
        ),
        (SubscriptionWorkflow.undo_cancellation, None, "not_canceling"),
    ]
    for update, arg, reason in refusals:
        args = () if arg is None else (arg,)
        cause = await update_failure(handle, update, *args)
        assert cause.type == reason

    history = await handle.fetch_history()
    update_events = {
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
    }
    assert not [e for e in history.events if e.event_type in update_events]
    state = await handle.query(SubscriptionWorkflow.state)
    assert (state.plan_id, state.cancel_at_period_end, state.plan_changes) == (
        "pro-monthly",
        False,
        [],
    )

    # After a cancellation, a plan change is refused until the cancellation is undone.
    await handle.execute_update(SubscriptionWorkflow.cancel_at_period_end)
    cause = await update_failure(
        handle, SubscriptionWorkflow.change_plan, ChangePlanRequest("business-monthly")
    )
    assert cause.type == "cancellation_pending"
    cause = await update_failure(handle, SubscriptionWorkflow.cancel_at_period_end)
    assert cause.type == "already_canceling"
