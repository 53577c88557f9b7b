"""Unpaid renewals in dunning children: recovery, policy end actions, cancellation wins.

Against localstripe with the real billing and dunning activities; the renewal card
(``FAILS_WHEN_CHARGED``) attaches but declines every charge.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from billing.dunning import load_policy
from billing.lifecycle import SubscriptionStatus, Trigger
from tests.dunning_workflow.harness import record_history as record_dunning_history
from tests.workflows.harness import (
    FAILS_WHEN_CHARGED,
    ONE_SECOND,
    VISA_OK,
    Billing,
    eventually,
    record_history,
)
from tests.workflows.test_subscription_gateway import renewal_needing
from workflows.dunning import DunningView, DunningWorkflow
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SetPaymentMethodRequest, SubscriptionState

# Plans other than starter_monthly get the default assignment (billing/dunning/data).
STANDARD = load_policy("standard", 3)  # new hand-overs: the generation-2 assignments


def dunning_charges(billing: Billing, invoice_id: str) -> list[tuple[str, str]]:
    """(attempt, status) of every charge a dunning child made for the invoice."""
    intents = billing.stripe.v1.payment_intents.list(params={"limit": 100})
    found = [
        (pi.metadata["dunning_attempt"], pi.status)
        for pi in intents.data
        if pi.metadata.to_dict().get("invoice_id") == invoice_id
        and "dunning_attempt" in pi.metadata.to_dict()
    ]
    return sorted(found)


async def child_view(billing: Billing, state: SubscriptionState) -> DunningView:
    (unpaid,) = state.unpaid_invoices
    assert unpaid.dunning_workflow_id is not None
    handle = billing.client.get_workflow_handle_for(DunningWorkflow.run, unpaid.dunning_workflow_id)
    view: DunningView = await handle.query(DunningWorkflow.state)
    return view


async def in_dunning(
    billing: Billing, segment: str = "default"
) -> tuple[WorkflowHandle[Any, Any], SubscriptionState, DunningView]:
    handle, _, _ = await renewal_needing(billing, FAILS_WHEN_CHARGED, segment=segment)
    state = await eventually(
        handle, lambda s: bool(s.unpaid_invoices) and bool(s.unpaid_invoices[0].dunning_workflow_id)
    )
    view = await child_view(billing, state)
    return handle, state, view


async def test_renewal_decline_goes_to_a_dunning_child(billing: Billing) -> None:
    _handle, state, view = await in_dunning(billing)
    (unpaid,) = state.unpaid_invoices
    assert unpaid.dunning_workflow_id == f"dunning-{unpaid.invoice_id}"
    assert unpaid.first_decline is not None and unpaid.first_decline.code == "card_declined"
    assert state.status is SubscriptionStatus.PAST_DUE
    assert state.grace_until == unpaid.recorded_at + STANDARD.grace_period
    assert view.state.policy_key == STANDARD.key
    assert len(view.state.attempts) == 1, "the renewal's own decline is attempt 1"
    assert view.next_retry_at is not None and view.next_retry_at > unpaid.recorded_at
    assert view.payment_method_id == state.payment_method_id
    assert dunning_charges(billing, unpaid.invoice_id) == []


async def test_new_card_in_dunning_retries_once_and_recovers(billing: Billing) -> None:
    handle, state, _view = await in_dunning(billing)
    (unpaid,) = state.unpaid_invoices
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method,
        SetPaymentMethodRequest(billing.card(VISA_OK)),
    )
    recovered = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert recovered.transitions[-1].cause is Trigger.DUNNING_RECOVERED
    assert recovered.unpaid_invoices == [] and recovered.grace_until is None
    assert dunning_charges(billing, unpaid.invoice_id) == [("2", "succeeded")]
    assert str(billing.store.get(unpaid.invoice_id).status) == "paid"
    child = billing.client.get_workflow_handle_for(
        DunningWorkflow.run, str(unpaid.dunning_workflow_id)
    )
    result = await child.result()
    assert (result.outcome, result.invoice_id, result.attempts) == (
        "recovered",
        unpaid.invoice_id,
        2,
    )
    await record_history(handle, "subscription_dunning_recovered")
    await record_dunning_history(child, "dunning_child_reports_to_parent")


async def test_exhausted_dunning_cancels_exactly_at_revoke_access_at(billing: Billing) -> None:
    handle, state, _ = await in_dunning(billing)
    (unpaid,) = state.unpaid_invoices
    window_end = unpaid.recorded_at + timedelta(hours=STANDARD.window_hours)
    await billing.sleep_until(window_end + timedelta(hours=1))
    canceled = await eventually(
        handle, lambda s: s.status is SubscriptionStatus.CANCELED, timeout=30
    )
    child = billing.client.get_workflow_handle_for(
        DunningWorkflow.run, str(unpaid.dunning_workflow_id)
    )
    result = await child.result()
    assert result.outcome == "stopped" and result.revoke_access_at is not None
    last = canceled.transitions[-1]
    assert last.cause is Trigger.DUNNING_EXHAUSTED_CANCEL
    assert last.at == result.revoke_access_at
    charges = dunning_charges(billing, unpaid.invoice_id)
    assert 1 <= len(charges) <= STANDARD.max_retries
    assert all(status != "succeeded" for _, status in charges)
    await record_history(handle, "subscription_dunning_exhausted")


async def test_cancel_just_before_a_retry_stops_every_later_charge(billing: Billing) -> None:
    handle, state, view = await in_dunning(billing)
    (unpaid,) = state.unpaid_invoices
    assert view.next_retry_at is not None
    await billing.sleep_until(view.next_retry_at - ONE_SECOND)
    await handle.execute_update(SubscriptionWorkflow.cancel_at_period_end)
    told = await child_view(billing, await handle.query(SubscriptionWorkflow.state))
    assert told.state.cancelled_at is not None, "delivered before the update returned"

    grace_end = unpaid.recorded_at + STANDARD.grace_period
    await billing.sleep_until(grace_end + timedelta(minutes=1))
    canceled = await eventually(handle, lambda s: s.status is SubscriptionStatus.CANCELED)
    assert dunning_charges(billing, unpaid.invoice_id) == [], "no charge after the cancel"
    child = billing.client.get_workflow_handle_for(
        DunningWorkflow.run, str(unpaid.dunning_workflow_id)
    )
    result = await child.result()
    assert (result.outcome, result.reason) == ("stopped", "customer_cancelled")
    assert result.revoke_access_at is not None
    # Access ends at the grace end (before the period end) per the standard policy; the
    # child counts it from its own start, a moment after the parent recorded the decline.
    assert abs(result.revoke_access_at - grace_end) < ONE_SECOND
    last = canceled.transitions[-1]
    assert (last.cause, last.at) == (Trigger.DUNNING_EXHAUSTED_CANCEL, result.revoke_access_at)
    assert canceled.grace_until == result.revoke_access_at
    assert canceled.period_end is not None and grace_end < canceled.period_end
    await record_history(handle, "subscription_dunning_cancelled")


async def test_undoing_a_cancellation_resumes_dunning_where_it_paused(billing: Billing) -> None:
    handle, state, view = await in_dunning(billing)
    (unpaid,) = state.unpaid_invoices
    assert view.next_retry_at is not None
    first_retry = view.next_retry_at
    await billing.sleep_until(first_retry - timedelta(hours=1))
    await handle.execute_update(SubscriptionWorkflow.cancel_at_period_end)
    await billing.sleep_until(first_retry + timedelta(minutes=5))
    paused = await child_view(billing, await handle.query(SubscriptionWorkflow.state))
    assert paused.state.cancelled_at is not None and paused.next_retry_at is None
    assert dunning_charges(billing, unpaid.invoice_id) == [], "nothing charged while cancelled"

    await handle.execute_update(SubscriptionWorkflow.undo_cancellation)
    undo_run = (await handle.describe()).run_id  # the run to record, before any later one
    resumed = await child_view(billing, await handle.query(SubscriptionWorkflow.state))
    assert resumed.state.cancelled_at is None, "delivered before the update returned"
    assert resumed.state.attempts[0].trigger.value == "initial_attempt", "the renewal counts"
    # The plan is made afresh from the attempts so far: the next retry is due now (made
    # at once) or later by the new backoff draw; either way it is a real charge again ...
    if len(resumed.state.attempts) == 1 and resumed.next_retry_at is not None:
        await billing.sleep_until(resumed.next_retry_at + timedelta(minutes=1))
    await eventually(
        handle,
        lambda _s: (
            dunning_charges(billing, unpaid.invoice_id) == [("2", "requires_payment_method")]
        ),
    )
    again = await child_view(billing, await handle.query(SubscriptionWorkflow.state))
    assert again.next_retry_at is not None and again.next_retry_at > first_retry
    # ... and a new card recovers the invoice: the subscription never stopped being billed.
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method,
        SetPaymentMethodRequest(billing.card(VISA_OK)),
    )
    recovered = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert not recovered.cancel_at_period_end and recovered.unpaid_invoices == []
    assert dunning_charges(billing, unpaid.invoice_id) == [
        ("2", "requires_payment_method"),
        ("3", "succeeded"),
    ]
    await record_history(
        billing.client.get_workflow_handle(handle.id, run_id=undo_run),
        "subscription_dunning_cancel_undone",
    )
    child = billing.client.get_workflow_handle_for(
        DunningWorkflow.run, str(unpaid.dunning_workflow_id)
    )
    assert (await child.result()).outcome == "recovered"
    await record_dunning_history(child, "dunning_cancel_undone")


async def test_the_customer_segment_picks_the_dunning_policy(billing: Billing) -> None:
    _handle, state, view = await in_dunning(billing, segment="enterprise")
    enterprise = load_policy("enterprise", 2)
    assert state.customer is not None and state.customer.segment == "enterprise"
    assert view.state.policy_key == enterprise.key != STANDARD.key
    (unpaid,) = state.unpaid_invoices
    assert state.grace_until == unpaid.recorded_at + enterprise.grace_period
