"""A portal upgrade's proration charge, made on-session, with 3-D Secure when the bank
asks for it.

The customer is in the portal when they upgrade, so the charge is customer-initiated
(on-session; an ops retry after a review stays off-session). When the issuer asks for
3-D Secure, the change waits for the customer, holding the run's lock as any charge in
flight does (a period close, continue-as-new and other portal actions wait behind it):

    charge on-session ──succeeded──> paid: the plan switches
        │ authentication needed
        ▼
    waiting (UpgradeAuthentication in state; the portal runs the challenge with
    Stripe.js and reports through ``complete_upgrade_authentication``)
        ├── the gateway has the intent succeeded ──> paid: the plan switches
        └── the page reports a failure, or the deadline passes ──> the intent is
            cancelled at the gateway (unless it settled meanwhile) ──> reverted: the
            invoice neutralized by a credit note, no manual review

A charge declined for any other reason goes to manual review, as before. The page's
report is a hint: the gateway's record of the intent decides every outcome.

Runs recorded before this behaviour charged portal upgrades off-session; the
``PATCH_PORTAL_UPGRADE_ON_SESSION`` marker keeps them replaying. The patch is checked
with ``workflow.patched()`` itself, not ``Generation.patched``: it is newer than every
generation, so no run of an existing generation may assume it.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.subscription import gateway_events, payments
from workflows.subscription.run import GATEWAY_READ_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities, InvoiceSummary
    from activities.gateway_sync import CancelIntentRequest, GatewaySyncActivities
    from billing.gateway import ChargeOutcome, ChargeSucceeded
    from billing.money import Money
    from workflows.subscription.state import (
        ChangePlanResult,
        UpgradeAuthentication,
        UpgradeAuthenticationReport,
    )

PATCH_PORTAL_UPGRADE_ON_SESSION = "portal-upgrade-on-session"
# How long a portal upgrade waits for the customer to pass the bank's challenge. EMV
# 3-D Secure challenges time out in minutes; the page is open while the customer acts.
AUTHENTICATION_TIMEOUT = timedelta(minutes=15)

AUTHENTICATION_FAILED = "authentication_failed"
AUTHENTICATION_TIMEOUT_REASON = "authentication_timeout"


def applies() -> bool:
    """Whether this run charges a portal upgrade on-session (see the module docstring)."""
    return workflow.patched(PATCH_PORTAL_UPGRADE_ON_SESSION)


async def charge(
    run: Run, invoice: InvoiceSummary, change_id: str, from_plan: str, to_plan: str
) -> ChargeOutcome | str | None:
    """Charge the proration invoice on-session; mark it paid on success.

    Returns what ``payments.settle`` returns (the outcome, a failure reason, or None
    when nothing was due), except that a 3-D Secure that did not complete comes back as
    ``authentication_failed`` or ``authentication_timeout``.
    """
    state = run.state
    if invoice.amount_remaining <= 0:
        return None
    if not state.payment_method_id or not state.gateway_customer_id:
        return "no_payment_method"
    request = payments.charge_request(
        state, invoice.invoice_id, 1, invoice.amount_remaining, invoice.currency
    )
    try:
        outcome = await workflow.execute_activity_method(
            BillingActivities.charge_invoice_on_session,
            request,
            start_to_close_timeout=payments.CHARGE_TIMEOUT,
            retry_policy=payments.CHARGE_RETRY,
        )
    except ActivityError as err:
        return payments.error_type(err.cause)
    if isinstance(outcome, ChargeSucceeded):
        await _paid(run, invoice, outcome.payment_intent_id, outcome.amount.amount)
        return outcome
    if payments.authentication_demanded(outcome) and outcome.payment_intent_id:
        waiting = UpgradeAuthentication(
            change_id=change_id,
            from_plan=from_plan,
            to_plan=to_plan,
            invoice_id=invoice.invoice_id,
            payment_intent_id=outcome.payment_intent_id,
            amount=invoice.amount_remaining,
            currency=invoice.currency,
            requested_at=workflow.now(),
            deadline=workflow.now() + AUTHENTICATION_TIMEOUT,
        )
        return await _authenticated(run, invoice, waiting)
    state.last_event = f"on-session charge {outcome.kind} for invoice {invoice.number}"
    return outcome


async def _paid(run: Run, invoice: InvoiceSummary, payment_intent_id: str, amount: int) -> None:
    await payments.mark_paid(run, invoice.invoice_id, payment_intent_id, amount)
    run.state.record_payment(amount, workflow.now())


async def _authenticated(
    run: Run, invoice: InvoiceSummary, waiting: UpgradeAuthentication
) -> ChargeOutcome | str:
    """Wait for the customer's report or the deadline; the gateway decides."""
    state = run.state
    state.upgrade_authentication = waiting
    state.last_event = f"upgrade to {waiting.to_plan} waits for 3-D Secure"
    run.publish_now()
    try:
        while True:
            try:
                await workflow.wait_condition(
                    lambda: _current(run).reported != "waiting",
                    timeout=max(waiting.deadline - workflow.now(), timedelta(seconds=1)),
                )
            except TimeoutError:
                return await _settle_or_cancel(run, invoice, AUTHENTICATION_TIMEOUT_REASON)
            current = _current(run)
            if current.reported == "failed":
                return await _settle_or_cancel(run, invoice, AUTHENTICATION_FAILED)
            truth = await gateway_events.read_gateway(run, [current.payment_intent_id], None)
            intent = next(iter(truth.intents), None)
            if intent is not None and intent.status == "succeeded":
                await _paid(run, invoice, intent.id, intent.amount)
                return ChargeSucceeded(intent.id, intent.latest_charge_id, _money(waiting))
            # Stripe.js said yes, the gateway not yet: wait on for another report.
            state.upgrade_authentication = dataclasses.replace(current, reported="waiting")
    finally:
        state.upgrade_authentication = None


def _current(run: Run) -> UpgradeAuthentication:
    current = run.state.upgrade_authentication
    assert current is not None
    return current


def _money(waiting: UpgradeAuthentication) -> Money:
    return Money(waiting.amount, waiting.currency)


async def _settle_or_cancel(run: Run, invoice: InvoiceSummary, reason: str) -> ChargeOutcome | str:
    """Cancel the intent so it can never be completed later; if it succeeded meanwhile,
    it is paid after all."""
    current = _current(run)
    intent = await workflow.execute_activity_method(
        GatewaySyncActivities.cancel_intent,
        CancelIntentRequest(current.payment_intent_id, key=f"cancel:{current.payment_intent_id}"),
        retry_policy=RETRY,
        start_to_close_timeout=GATEWAY_READ_TIMEOUT,
    )
    if intent.status == "succeeded":
        await _paid(run, invoice, intent.id, intent.amount)
        return ChargeSucceeded(intent.id, intent.latest_charge_id, _money(current))
    run.state.last_event = f"upgrade to {current.to_plan}: {reason.replace('_', ' ')}"
    return reason


def is_authentication_failure(outcome: ChargeOutcome | str | None) -> bool:
    """A 3-D Secure that did not complete: reverted without a manual review."""
    return outcome in (AUTHENTICATION_FAILED, AUTHENTICATION_TIMEOUT_REASON)


def check_report(
    state_upgrade: UpgradeAuthentication | None, report: UpgradeAuthenticationReport
) -> None:
    """The update validator: an upgrade must wait for this very intent."""
    if state_upgrade is None:
        raise ApplicationError(
            "no plan change is waiting for 3-D Secure", type="no_pending_authentication"
        )
    if state_upgrade.payment_intent_id != report.payment_intent_id:
        raise ApplicationError(
            "that payment is not the one the plan change waits for",
            type="payment_intent_mismatch",
        )


async def report(run: Run, report: UpgradeAuthenticationReport) -> ChangePlanResult:
    """The page's report; answers with the change's outcome once the change has ended
    (the ``change_plan`` update holds the lock meanwhile, so this handler takes none)."""
    state = run.state
    current = state.upgrade_authentication
    check_report(current, report)
    assert current is not None
    state.upgrade_authentication = dataclasses.replace(current, reported=report.outcome)
    change_id = current.change_id

    def recorded() -> bool:
        return any(c.change_id == change_id for c in state.plan_changes)

    def ended() -> bool:
        waiting = state.upgrade_authentication
        still_waiting = waiting is not None and waiting.change_id == change_id
        return recorded() or (
            still_waiting and waiting is not None and waiting.reported == "waiting"
        )

    await workflow.wait_condition(ended)
    record = next((c for c in reversed(state.plan_changes) if c.change_id == change_id), None)
    if record is None:  # Stripe.js said yes, the gateway not yet: still waiting
        raise ApplicationError(
            "the gateway has not seen the payment succeed yet; try again",
            type="payment_not_completed",
        )
    return ChangePlanResult(
        outcome=record.outcome,
        plan_id=state.plan_id or record.from_plan,
        pending_plan_id=state.pending_plan_id,
        effective_at=record.effective_at,
        invoice_id=record.invoice_id,
        amount_charged=current.amount if record.outcome == "applied" else 0,
        credit_note_id=record.credit_note_id,
        review_workflow_id=record.review_workflow_id,
        reason=record.reason,
    )
