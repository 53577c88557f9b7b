"""A portal upgrade charged on-session, with 3-D Secure: the change waits for the
customer, completes when the gateway has the payment, and is reverted cleanly (credit
note, no manual review, the intent cancelled) when the challenge fails or times out."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.workflows.harness import REQUIRES_3DS, Billing, eventually, record_history
from tests.workflows.test_subscription_gateway import authenticate_on_localstripe
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import (
    ChangePlanRequest,
    ChangePlanResult,
    SetPaymentMethodRequest,
    SubscriptionState,
    UpgradeAuthenticationReport,
)
from workflows.subscription.upgrade_payment import AUTHENTICATION_TIMEOUT


async def _waiting_upgrade(
    billing: Billing,
) -> tuple[WorkflowHandle[Any, Any], asyncio.Task[ChangePlanResult], SubscriptionState]:
    """A pro subscription, paid, whose card now needs 3-D Secure, asked to upgrade to
    business: returns the handle, the running update, and the state while it waits."""
    handle = await billing.subscribe(plan_id="pro-monthly")
    await eventually(handle, lambda s: s.invoice_count == 1 and s.status == "active")
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method,
        SetPaymentMethodRequest(billing.card(REQUIRES_3DS)),
    )
    change = asyncio.create_task(
        handle.execute_update(
            SubscriptionWorkflow.change_plan, ChangePlanRequest("business-monthly")
        )
    )
    waiting = await eventually(handle, lambda s: s.upgrade_authentication is not None)
    assert waiting.migrating_to == "business-monthly"
    assert waiting.plan_id == "pro-monthly"
    return handle, change, waiting


async def test_upgrade_waits_for_3ds_and_completes_when_the_gateway_has_the_payment(
    billing: Billing, localstripe_url: str
) -> None:
    handle, change, waiting = await _waiting_upgrade(billing)
    upgrade = waiting.upgrade_authentication
    assert upgrade is not None
    assert (upgrade.from_plan, upgrade.to_plan, upgrade.reported) == (
        "pro-monthly",
        "business-monthly",
        "waiting",
    )
    intent = await billing.gateway.retrieve_payment_intent(upgrade.payment_intent_id)
    assert str(intent.status) == "requires_action"
    assert intent.amount.amount == upgrade.amount
    assert not change.done()

    # Stripe.js says yes before the bank has: the workflow asks the gateway and waits on.
    with pytest.raises(WorkflowUpdateFailedError) as early:
        await handle.execute_update(
            SubscriptionWorkflow.complete_upgrade_authentication,
            UpgradeAuthenticationReport(upgrade.payment_intent_id, "succeeded"),
        )
    assert isinstance(early.value.cause, ApplicationError)
    assert early.value.cause.type == "payment_not_completed"

    assert intent.client_secret is not None
    authenticate_on_localstripe(localstripe_url, intent.id, intent.client_secret)
    result = await handle.execute_update(
        SubscriptionWorkflow.complete_upgrade_authentication,
        UpgradeAuthenticationReport(upgrade.payment_intent_id, "succeeded"),
    )
    assert (result.outcome, result.plan_id, result.review_workflow_id) == (
        "applied",
        "business-monthly",
        None,
    )
    assert result.amount_charged == upgrade.amount
    assert (await change).outcome == "applied"
    state = await handle.query(SubscriptionWorkflow.state)
    assert (state.plan_id, state.migrating_to, state.upgrade_authentication) == (
        "business-monthly",
        None,
        None,
    )
    assert str(billing.store.get(upgrade.invoice_id).status) == "paid"
    await record_history(handle, "subscription_upgrade_authenticated")


async def test_failed_challenge_reverts_without_review_and_cancels_the_intent(
    billing: Billing,
) -> None:
    handle, change, waiting = await _waiting_upgrade(billing)
    upgrade = waiting.upgrade_authentication
    assert upgrade is not None
    result = await handle.execute_update(
        SubscriptionWorkflow.complete_upgrade_authentication,
        UpgradeAuthenticationReport(upgrade.payment_intent_id, "failed"),
    )
    assert (result.outcome, result.plan_id, result.reason) == (
        "reverted",
        "pro-monthly",
        "authentication_failed",
    )
    assert result.review_workflow_id is None and result.credit_note_id
    assert (await change).outcome == "reverted"
    state = await handle.query(SubscriptionWorkflow.state)
    assert (state.plan_id, state.migrating_to, state.upgrade_authentication) == (
        "pro-monthly",
        None,
        None,
    )
    assert state.plan_changes[-1].reason == "authentication_failed"
    assert str(billing.store.get(upgrade.invoice_id).status) == "void"
    intent = await billing.gateway.retrieve_payment_intent(upgrade.payment_intent_id)
    assert str(intent.status) == "canceled"
    await record_history(handle, "subscription_upgrade_authentication_failed")


async def test_unfinished_challenge_reverts_at_the_deadline(billing: Billing) -> None:
    handle, change, waiting = await _waiting_upgrade(billing)
    upgrade = waiting.upgrade_authentication
    assert upgrade is not None
    await billing.env.sleep(AUTHENTICATION_TIMEOUT)
    result = await change
    assert (result.outcome, result.plan_id, result.reason, result.review_workflow_id) == (
        "reverted",
        "pro-monthly",
        "authentication_timeout",
        None,
    )
    intent = await billing.gateway.retrieve_payment_intent(upgrade.payment_intent_id)
    assert str(intent.status) == "canceled"
    state = await handle.query(SubscriptionWorkflow.state)
    assert state.upgrade_authentication is None and state.migrating_to is None


async def test_reports_must_name_the_waiting_intent(billing: Billing) -> None:
    handle = await billing.subscribe(plan_id="pro-monthly")
    await eventually(handle, lambda s: s.invoice_count == 1)
    with pytest.raises(WorkflowUpdateFailedError) as nothing:
        await handle.execute_update(
            SubscriptionWorkflow.complete_upgrade_authentication,
            UpgradeAuthenticationReport("pi_unknown", "succeeded"),
        )
    assert isinstance(nothing.value.cause, ApplicationError)
    assert nothing.value.cause.type == "no_pending_authentication"

    handle, change, waiting = await _waiting_upgrade(billing)
    with pytest.raises(WorkflowUpdateFailedError) as other:
        await handle.execute_update(
            SubscriptionWorkflow.complete_upgrade_authentication,
            UpgradeAuthenticationReport("pi_other", "failed"),
        )
    assert isinstance(other.value.cause, ApplicationError)
    assert other.value.cause.type == "payment_intent_mismatch"
    assert not change.done()
    upgrade = waiting.upgrade_authentication
    assert upgrade is not None
    await handle.execute_update(
        SubscriptionWorkflow.complete_upgrade_authentication,
        UpgradeAuthenticationReport(upgrade.payment_intent_id, "failed"),
    )
    assert (await change).outcome == "reverted"
