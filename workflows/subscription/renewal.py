"""A subscription's periods: the first one, and each renewal at a period end.

begin:         a trial, or the first period invoiced and charged at once
close_period:  at the period end, cancel at the boundary or renew: a scheduled plan
               change takes effect, the next period is invoiced in advance (tax
               quoted and frozen, the invoice finalized) and charged
paid:          the lifecycle moves on (trial ended paid, renewal paid)
unpaid:        the invoice waits for the customer (3-D Secure asked on a renewal),
               goes to dunning (a renewal), or waits out the first-payment window
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from workflows.subscription import authentication, dunning_link, outbound, payments
from workflows.subscription.generations import PATCH_ACTION_REQUIRED, PATCH_DUNNING_CHILD
from workflows.subscription.run import Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import InvoiceLineInput, InvoiceSummary
    from billing.catalog import Price
    from billing.declines import DeclineInfo
    from billing.gateway import ChargeDeclined, ChargeOutcome, ChargeRequiresAction, ChargeSucceeded
    from billing.lifecycle import SubscriptionStatus, Trigger
    from workflows.subscription.state import (
        InvoicePurpose,
        PlanChangeRecord,
        SubscriptionState,
        UnpaidInvoice,
        next_period,
        trial_end,
    )

# Stripe expires a subscription whose first invoice stays unpaid for 23 hours.
FIRST_PAYMENT_WINDOW = timedelta(hours=23)


async def begin(run: Run) -> None:
    """Start the first period: a trial, or the first invoice charged at once."""
    state = run.state
    assert state.start_at is not None
    price = state.price()
    if state.trial and price.trial_days:
        ends = trial_end(state.start_at, price.trial_days)
        state.anchor, state.period_start, state.period_end = ends, state.start_at, ends
        run.apply(Trigger.TRIAL_STARTED, state.start_at)
        return
    state.anchor = state.start_at
    state.period_start, state.period_end = next_period(price, state.anchor, state.start_at)
    if await _bill_period(run, "first", price):
        run.apply(Trigger.FIRST_PAYMENT_SUCCEEDED, workflow.now())


async def expire_unless_paid(run: Run) -> None:
    """The first invoice stays open (without the lock held, so a payment event can settle
    it) for FIRST_PAYMENT_WINDOW; then it is voided and the subscription expires."""
    state = run.state
    run.publish(f"first payment due within {FIRST_PAYMENT_WINDOW}")
    try:
        await workflow.wait_condition(
            lambda: state.status is not SubscriptionStatus.INCOMPLETE,
            timeout=FIRST_PAYMENT_WINDOW,
        )
        return
    except TimeoutError:
        pass
    async with run.lock:
        if state.status is not SubscriptionStatus.INCOMPLETE:
            return
        for unpaid in list(state.unpaid_invoices):
            await payments.void(run, unpaid.invoice_id, "first_payment_failed_expired")
        state.unpaid_invoices.clear()
        run.apply(Trigger.FIRST_PAYMENT_FAILED_EXPIRED, workflow.now())


async def close_period(run: Run) -> None:
    """The period has ended: access ends here after a cancellation, else renew."""
    state = run.state
    boundary = state.period_end
    assert boundary is not None and state.anchor is not None
    if state.cancel_at_period_end:
        # Access ends exactly at the boundary; nothing is billed for the next period.
        run.apply(Trigger.PERIOD_ENDED_CANCEL, boundary)
        return
    was_trialing = state.status is SubscriptionStatus.TRIALING
    if state.pending_plan_id is not None:
        apply_scheduled_change(state, boundary)
    price = state.price()
    state.period_start, state.period_end = next_period(price, state.anchor, boundary)
    if state.status is SubscriptionStatus.UNPAID:
        # No new invoices while unpaid; access stays off until the debt is paid.
        run.publish_now()
        return
    paid = await _bill_period(run, "renewal", price)
    trigger = renewal_trigger(state.status, was_trialing=was_trialing, paid=paid)
    if trigger is not None:
        run.apply(trigger, boundary)


def renewal_trigger(
    status: SubscriptionStatus, *, was_trialing: bool, paid: bool
) -> Trigger | None:
    """Where a renewal's charge moves the lifecycle (None: it stays where it is)."""
    if was_trialing:
        return Trigger.TRIAL_ENDED_PAID if paid else Trigger.TRIAL_ENDED_UNPAID
    if not paid:
        return Trigger.RENEWAL_FAILED
    return Trigger.RENEWAL_PAID if status is SubscriptionStatus.ACTIVE else None


def apply_scheduled_change(state: SubscriptionState, boundary: datetime) -> None:
    """A plan change scheduled for the period end takes effect at the boundary."""
    assert state.pending_plan_id is not None and state.plan_id is not None
    old_price, new_price = state.price(), state.price(state.pending_plan_id)
    if not old_price.same_cycle(new_price):
        state.anchor = boundary  # a new cycle starts a fresh grid at the boundary
    state.remember_change(
        PlanChangeRecord(
            change_id=f"scheduled:{boundary.isoformat()}",
            from_plan=state.plan_id,
            to_plan=state.pending_plan_id,
            kind="scheduled",
            requested_at=boundary,
            effective_at=boundary,
            outcome="applied",
        )
    )
    state.plan_id, state.pending_plan_id = state.pending_plan_id, None


def period_line(price: Price, period_start: datetime, period_end: datetime) -> InvoiceLineInput:
    """The invoice line of one period of ``price``, billed in advance."""
    return InvoiceLineInput(
        line_id=f"{price.plan_id}:{period_start.isoformat()}",
        description=f"{price.plan_id} from {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}",
        amount=price.amount,
        tax_inclusive=price.tax_inclusive,
        plan_id=price.plan_id,
        period_start=period_start,
        period_end=period_end,
    )


async def _bill_period(run: Run, purpose: InvoicePurpose, price: Price) -> bool:
    """Invoice the current period in advance and charge it; True when paid."""
    state = run.state
    assert state.period_start is not None and state.period_end is not None
    line = period_line(price, state.period_start, state.period_end)
    key = f"sub:{state.subscription_id}:period:{state.period_start.isoformat()}"
    period = (state.period_start, state.period_end)
    if run.generation.number >= 4:
        invoice, outcome = await payments.bill(run, purpose, key, [line], *period)
    else:
        invoice = await payments.issue_invoice(run, purpose, key, [line], *period)
        outcome = await payments.settle(run, invoice, attempt=1)
    if isinstance(outcome, ChargeSucceeded) or invoice.amount_remaining <= 0:
        return True
    await _record_unpaid(run, invoice, outcome, purpose)
    return False


def unpaid_invoice(
    invoice: InvoiceSummary, outcome: ChargeOutcome | str | None, at: datetime
) -> tuple[UnpaidInvoice, DeclineInfo | None]:
    """What the state keeps of an invoice whose charge failed, and the decline as the
    gateway reported it (dunning starts from it)."""
    family = reason = payment_intent = None
    decline: DeclineInfo | None = None
    if isinstance(outcome, ChargeDeclined):
        family, reason = str(outcome.classification.family), outcome.classification.reason
        payment_intent, decline = outcome.payment_intent_id, outcome.decline
    elif isinstance(outcome, str):
        reason = outcome
    elif outcome is not None:  # processing, or 3-D Secure asked of the customer
        reason, payment_intent = outcome.kind, outcome.payment_intent_id
        if isinstance(outcome, ChargeRequiresAction):
            decline = DeclineInfo(code="authentication_required")
    unpaid = UnpaidInvoice(
        invoice_id=invoice.invoice_id,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        attempts=1,
        decline_family=family,
        decline_reason=reason,
        payment_intent_id=payment_intent,
        recorded_at=at,
    )
    return unpaid, decline


async def _record_unpaid(
    run: Run,
    invoice: InvoiceSummary,
    outcome: ChargeOutcome | str | None,
    purpose: InvoicePurpose,
) -> None:
    state = run.state
    unpaid, decline = unpaid_invoice(invoice, outcome, workflow.now())
    if run.patched(PATCH_DUNNING_CHILD):
        unpaid.first_decline = decline
    state.unpaid_invoices.append(unpaid)
    outbound.payment_failed(
        run, unpaid.invoice_id, unpaid.amount, unpaid.currency, unpaid.decline_reason or ""
    )
    state.last_event = (
        f"invoice {invoice.number} unpaid ({unpaid.decline_family or '—'}/{unpaid.decline_reason})"
    )
    if (
        purpose == "renewal"
        and unpaid.payment_intent_id is not None
        and payments.authentication_demanded(outcome)
        and run.patched(PATCH_ACTION_REQUIRED)
    ):
        # Dunning waits: the customer may still confirm the same intent on-session.
        authentication.require_action(run, unpaid, unpaid.payment_intent_id)
        return
    if purpose != "first":  # a first invoice has FIRST_PAYMENT_WINDOW, not dunning
        await dunning_link.hand_to_dunning(run, unpaid)
