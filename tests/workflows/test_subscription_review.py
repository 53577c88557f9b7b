"""A failed proration charge: revert, credit note, manual review; ops resolve it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus

from billing.lifecycle import SubscriptionStatus
from tests.workflows.harness import (
    FAILS_WHEN_CHARGED,
    VISA_OK,
    Billing,
    eventually,
    record_history,
)
from workflows import search_attributes as sa
from workflows.manual_review import AcceptPaymentMethodRequest, ManualReviewWorkflow
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import ChangePlanRequest, SetPaymentMethodRequest


async def test_failed_proration_charge_reverts_and_opens_a_review(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="starter-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(days=15))
    first = await eventually(handle, lambda s: s.invoice_count == 1)
    assert first.status is SubscriptionStatus.ACTIVE

    failing_card = billing.card(FAILS_WHEN_CHARGED)
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method, SetPaymentMethodRequest(failing_card)
    )
    gateway_default = await billing.gateway.default_payment_method(first.gateway_customer_id)
    assert gateway_default == failing_card

    result = await handle.execute_update(
        SubscriptionWorkflow.change_plan, ChangePlanRequest("business-monthly")
    )
    assert (result.outcome, result.plan_id) == ("reverted", "starter-monthly")
    assert result.review_workflow_id == f"review-{result.invoice_id}"

    invoice = billing.store.get(result.invoice_id)
    assert str(invoice.status) == "void"
    assert invoice.amount_paid == 0
    assert invoice.amount_credited == invoice.total > 0, "neutralized by a credit note"
    state = await handle.query(SubscriptionWorkflow.state)
    assert (state.plan_id, state.status) == ("starter-monthly", SubscriptionStatus.ACTIVE)
    assert state.plan_changes[-1].outcome == "reverted"
    assert state.plan_changes[-1].credit_note_id == result.credit_note_id
    assert not state.unpaid_invoices, "a reverted change leaves nothing owed"

    billing.started.append(result.review_workflow_id)
    review = billing.client.get_workflow_handle_for(
        ManualReviewWorkflow.run, result.review_workflow_id
    )
    described = await review.describe()
    assert described.status is WorkflowExecutionStatus.RUNNING
    assert described.typed_search_attributes.get(sa.REVIEW_REASON) == "proration_charge_failed"
    opened = await review.query(ManualReviewWorkflow.review)
    assert (opened.from_plan, opened.to_plan, opened.invoice_id) == (
        "starter-monthly",
        "business-monthly",
        result.invoice_id,
    )
    assert opened.decline_family is not None

    # Ops accept a new card: the review signals the subscription, which retries the change.
    good_card = billing.card(VISA_OK)
    resolution = await review.execute_update(
        ManualReviewWorkflow.accept_with_payment_method, AcceptPaymentMethodRequest(good_card)
    )
    assert resolution.action == "accept_with_payment_method"
    await review.result()
    retried = await eventually(handle, lambda s: len(s.plan_changes) == 2)
    assert retried.plan_id == "business-monthly"
    assert retried.payment_method_id == good_card
    assert [c.outcome for c in retried.plan_changes] == ["reverted", "applied"]
    paid = billing.store.get(retried.plan_changes[-1].invoice_id)
    assert str(paid.status) == "paid"
    await record_history(handle, "subscription_review")
    await record_history(review, "manual_review")
