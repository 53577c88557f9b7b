"""3-D Secure on renewals: the issuer asks, the customer confirms on-session.

When a renewal's off-session charge needs authentication, dunning waits: the payment
becomes a ``PendingAction`` with a deadline and the customer is told. In the portal the
customer either gets one frictionless on-session attempt (where ``billing.sca`` lets the
account skip the challenge) or completes the intent with Stripe.js; the gateway's own
record of the intent decides whether the invoice is paid. After the deadline an
unconfirmed payment goes to dunning.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows.subscription import dunning_link, gateway_events, payments
from workflows.subscription.run import Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from billing.gateway import ChargeDeclined, ChargeSucceeded
    from billing.money import Money
    from billing.sca import challenge_decision
    from workflows.subscription.state import (
        ConfirmationRefused,
        ConfirmPaymentRequest,
        Notice,
        PaymentConfirmation,
        PendingAction,
        SubscriptionState,
        UnpaidInvoice,
    )


def pending_action(
    state: SubscriptionState, unpaid: UnpaidInvoice, payment_intent_id: str, now: datetime
) -> tuple[PendingAction, Notice]:
    """The payment the customer must confirm, and the notice that tells them."""
    assert state.customer is not None
    deadline = now + state.gateway_policy.action_required_deadline
    decision = challenge_decision(
        state.customer.address.country,
        Money(unpaid.amount, unpaid.currency),
        state.payment_history(),
        now,
    )
    action = PendingAction(
        invoice_id=unpaid.invoice_id,
        payment_intent_id=payment_intent_id,
        amount=unpaid.amount,
        currency=unpaid.currency,
        requested_at=now,
        deadline=deadline,
        challenge=decision.challenge,
        exemption=decision.exemption,
        challenge_reason=decision.reason,
    )
    notice = Notice(
        kind="action_required",
        key=f"action_required:{payment_intent_id}",
        at=now,
        invoice_id=unpaid.invoice_id,
        payment_intent_id=payment_intent_id,
        due_at=deadline,
        portal_path=f"/portal?subscription={state.subscription_id}",
    )
    return action, notice


def require_action(run: Run, unpaid: UnpaidInvoice, payment_intent_id: str) -> None:
    # The notice is recorded in state; notices.watch sends it.
    state = run.state
    state.pending_action, notice = pending_action(state, unpaid, payment_intent_id, workflow.now())
    state.notices.append(notice)
    state.last_event = f"action required: confirm payment for invoice {unpaid.invoice_id}"


async def watch_deadline(run: Run) -> None:
    """After the deadline, an unconfirmed payment goes to dunning."""
    state = run.state
    while True:
        await workflow.wait_condition(
            lambda: state.pending_action is not None and state.pending_action.status == "waiting"
        )
        action = state.pending_action
        assert action is not None

        def settled(seen: PendingAction = action) -> bool:
            return state.pending_action is not seen

        try:
            await workflow.wait_condition(
                settled,
                timeout=max(action.deadline - workflow.now(), timedelta(seconds=1)),
            )
            continue
        except TimeoutError:
            pass
        async with run.lock:
            if state.pending_action is not action:
                continue
            state.pending_action = dataclasses.replace(action, status="expired")
            unpaid = next(
                (u for u in state.unpaid_invoices if u.invoice_id == action.invoice_id), None
            )
            state.last_event = f"payment confirmation for {action.invoice_id} expired"
            if unpaid is not None:
                await dunning_link.hand_to_dunning(run, unpaid)
            run.publish_now()


def waiting_action(state: SubscriptionState) -> PendingAction:
    try:
        return state.waiting_action()
    except ConfirmationRefused as exc:
        raise ApplicationError(exc.message, type=exc.code) from None


def action_to_confirm(state: SubscriptionState, request: ConfirmPaymentRequest) -> PendingAction:
    try:
        return state.action_to_confirm(request.payment_intent_id)
    except ConfirmationRefused as exc:
        raise ApplicationError(exc.message, type=exc.code) from None


async def begin_confirmation(run: Run) -> PaymentConfirmation:
    """Where the account may skip the challenge, one on-session attempt comes first (the
    issuer may approve it without friction); otherwise, or if the issuer still asks, the
    customer completes the intent with Stripe.js."""
    action = waiting_action(run.state)
    if not action.challenge and not action.frictionless_attempted:
        action = await _attempt_on_session(run, action)
    return PaymentConfirmation(
        outcome="paid" if action.status == "confirmed" else "requires_action",
        payment_intent_id=action.payment_intent_id,
        challenge=action.challenge,
        exemption=action.exemption,
        reason=action.challenge_reason,
    )


async def confirm_completed(run: Run, request: ConfirmPaymentRequest) -> PendingAction:
    """The customer confirmed on-session; the gateway's state of the intent decides."""
    action = action_to_confirm(run.state, request)
    truth = await gateway_events.read_gateway(run, [action.payment_intent_id], None)
    if not any(i.status == "succeeded" for i in truth.intents):
        raise ApplicationError(
            "the gateway has not seen the payment succeed",
            type="payment_not_completed",
            non_retryable=True,
        )
    await gateway_events.apply_truth(run, truth)
    run.publish_now()
    assert run.state.pending_action is not None
    return run.state.pending_action


async def _attempt_on_session(run: Run, action: PendingAction) -> PendingAction:
    state = run.state
    action = dataclasses.replace(action, frictionless_attempted=True)
    state.pending_action = action
    unpaid = next((u for u in state.unpaid_invoices if u.invoice_id == action.invoice_id), None)
    if unpaid is None or not state.payment_method_id or not state.gateway_customer_id:
        return action
    outcome = await payments.charge_unpaid(run, unpaid, BillingActivities.charge_invoice_on_session)
    if outcome is None:
        return action
    if isinstance(outcome, ChargeSucceeded):
        await payments.settle_unpaid(run, unpaid.invoice_id, outcome.payment_intent_id)
        assert state.pending_action is not None
        return state.pending_action
    if outcome.payment_intent_id and payments.authentication_demanded(outcome):
        # The issuer still asks: the customer completes this newer intent instead.
        unpaid.payment_intent_id = outcome.payment_intent_id
        action = dataclasses.replace(action, payment_intent_id=outcome.payment_intent_id)
        state.pending_action = action
    elif isinstance(outcome, ChargeDeclined):
        unpaid.decline_family = str(outcome.classification.family)
        unpaid.decline_reason = outcome.classification.reason
    state.last_event = f"on-session attempt for invoice {unpaid.invoice_id}: {outcome.kind}"
    return action
