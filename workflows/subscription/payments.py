"""Invoices and charges: issue an invoice, charge it, record what was paid.

Declines come back from the charge activities as values (``ChargeOutcome``); an
activity that fails outright (a bad token, a detached card) leaves the invoice unpaid
as a decline would, with the error's type as the reason. A gateway outage (an
infrastructure failure past the charge's retries) is not a decline: the charge of an
invoice is retried through it with an ops alert (``outage.py``). Every charge carries an idempotency key built from the invoice and the attempt
number, so a retried or replayed charge is answered with its first result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from workflows.subscription import dunning_link, outage
from workflows.subscription.run import DB_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import (
        BillingActivities,
        BillRequest,
        BillResult,
        ChargeAndRecordRequest,
        ChargeRequest,
        ChargeTarget,
        InvoiceLineInput,
        InvoiceSummary,
        IssueInvoiceRequest,
        MarkPaidRequest,
        VoidInvoiceRequest,
    )
    from billing.declines import DeclineFamily
    from billing.gateway import (
        ChargeDeclined,
        ChargeOutcome,
        ChargeRequiresAction,
        ChargeSucceeded,
    )
    from billing.lifecycle import SubscriptionStatus, Trigger
    from workflows.dunning import PaidOutside
    from workflows.subscription.state import (
        InvoicePurpose,
        InvoiceRecord,
        SubscriptionState,
        UnpaidInvoice,
    )

# A charge is retried only on gateway unavailability; declines come back as values.
CHARGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
)
CHARGE_TIMEOUT = timedelta(seconds=60)
# A charge's first attempt as a local activity (generation 3): one attempt, bounded so a
# stopping worker is not held long; whatever it leaves undecided goes to the activity.
_LOCAL_CHARGE_TIMEOUT = timedelta(seconds=30)
_ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)

# What a payment recovers the subscription from, once nothing is owed.
_RECOVERY = {
    SubscriptionStatus.INCOMPLETE: Trigger.FIRST_PAYMENT_SUCCEEDED,
    SubscriptionStatus.PAST_DUE: Trigger.DUNNING_RECOVERED,
    SubscriptionStatus.UNPAID: Trigger.PAYMENT_AFTER_UNPAID,
}


def authentication_demanded(outcome: ChargeOutcome | str | None) -> bool:
    """The issuer asked for 3-D Secure: the customer must confirm on-session."""
    if isinstance(outcome, ChargeRequiresAction):
        return True
    return (
        isinstance(outcome, ChargeDeclined)
        and outcome.classification.family is DeclineFamily.AUTHENTICATION_REQUIRED
    )


def error_type(cause: BaseException | None) -> str:
    """Why a charge activity failed (a bad token, a detached card, the gateway down past
    the retries): the application error's type."""
    return cause.type if isinstance(cause, ApplicationError) and cause.type else "charge_error"


def issue_request(
    state: SubscriptionState,
    key: str,
    lines: list[InvoiceLineInput],
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> IssueInvoiceRequest:
    assert state.customer is not None and state.currency is not None
    return IssueInvoiceRequest(
        key=key,
        subscription_id=state.subscription_id,
        customer=state.customer,
        currency=state.currency,
        lines=lines,
        period_start=period_start,
        period_end=period_end,
        at=at,
    )


async def issue_invoice(
    run: Run,
    purpose: InvoicePurpose,
    key: str,
    lines: list[InvoiceLineInput],
    period_start: datetime,
    period_end: datetime,
) -> InvoiceSummary:
    """Quote tax, issue and finalize the invoice under ``key`` (a retry finds it issued)."""
    request = issue_request(run.state, key, lines, period_start, period_end, workflow.now())
    return await _issue(run, purpose, request)


async def _issue(run: Run, purpose: InvoicePurpose, request: IssueInvoiceRequest) -> InvoiceSummary:
    if run.generation.number >= 2:
        invoice = await run.step(BillingActivities.issue_invoice, request)
    else:
        quote = await run.step(BillingActivities.quote_tax, request.tax_request())
        invoice = await run.step(BillingActivities.create_invoice, request.with_quote(quote))
    _remember(run.state, purpose, invoice, request.period_start, request.period_end)
    return invoice


def _remember(
    state: SubscriptionState,
    purpose: InvoicePurpose,
    invoice: InvoiceSummary,
    period_start: datetime,
    period_end: datetime,
) -> None:
    state.remember_invoice(
        InvoiceRecord(
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            purpose=purpose,
            currency=invoice.currency,
            period_start=period_start,
            period_end=period_end,
            total=invoice.total,
            tax_total=invoice.tax_total,
            status="open" if invoice.amount_remaining > 0 else "paid",
        )
    )
    state.last_event = f"invoice {invoice.number or invoice.invoice_id} finalized"


async def bill(
    run: Run,
    purpose: InvoicePurpose,
    key: str,
    lines: list[InvoiceLineInput],
    period_start: datetime,
    period_end: datetime,
) -> tuple[InvoiceSummary, ChargeOutcome | str | None]:
    """Issue the invoice and charge it in one local activity (generation 4); the invoice
    and what ``settle`` would have returned.

    The local activity gets one attempt, like the local charge of generation 3: its
    outcome stands when it gives one (a decline or a definitive charge error among
    them). When it fails (a timeout, a stopping worker, the database or the gateway
    unavailable, an invoice the tax engine refuses), the steps of generation 3 take
    over: the invoice is issued under its key, which finds it if the attempt got that
    far, and the charge activity charges under the same idempotency key, which the
    gateway answers with the attempt's result if it went through."""
    state = run.state
    request = issue_request(state, key, lines, period_start, period_end, workflow.now())
    target = (
        ChargeTarget(state.gateway_customer_id, state.payment_method_id)
        if state.payment_method_id and state.gateway_customer_id
        else None
    )
    try:
        billed = await workflow.execute_local_activity_method(
            BillingActivities.bill,
            BillRequest(request, target),
            start_to_close_timeout=_LOCAL_CHARGE_TIMEOUT,
            retry_policy=_ONE_ATTEMPT,
        )
    except FailureError:
        invoice = await _issue(run, purpose, request)
        due = max(invoice.total, 0)  # the attempt may have paid it: charge the same again
        return invoice, await settle(run, invoice, attempt=1, local_first=False, amount=due)
    _remember(state, purpose, billed.invoice, period_start, period_end)
    return billed.invoice, _settled(run, billed)


def _settled(run: Run, billed: BillResult) -> ChargeOutcome | str | None:
    """What ``settle`` returns, from the charge the bill step made."""
    state, invoice = run.state, billed.invoice
    if billed.charge_error is not None:
        return billed.charge_error
    outcome = billed.outcome
    if outcome is None:
        return None if invoice.total <= 0 else "no_payment_method"
    if isinstance(outcome, ChargeSucceeded):  # the bill step recorded the payment
        state.set_invoice_status(invoice.invoice_id, "paid")
        state.record_payment(outcome.amount.amount, workflow.now())
    state.last_event = f"charge {outcome.kind} for invoice {invoice.number}"
    return outcome


def charge_request(
    state: SubscriptionState, invoice_id: str, attempt: int, amount: int, currency: str
) -> ChargeRequest:
    assert state.payment_method_id and state.gateway_customer_id
    return ChargeRequest(
        subscription_id=state.subscription_id,
        invoice_id=invoice_id,
        attempt=attempt,
        gateway_customer_id=state.gateway_customer_id,
        payment_method_id=state.payment_method_id,
        amount=amount,
        currency=currency,
    )


async def settle(
    run: Run,
    invoice: InvoiceSummary,
    attempt: int,
    *,
    local_first: bool = True,
    amount: int | None = None,
) -> ChargeOutcome | str | None:
    """Charge what is due (``amount``, by default what remains) and mark the invoice
    paid on success.

    Returns the charge outcome, a failure reason string when no charge could be made,
    or None when nothing was due. ``local_first=False`` skips the local attempt of
    generation 3 (one was made already).
    """
    state = run.state
    due = invoice.amount_remaining if amount is None else amount
    if due <= 0:
        return None
    if not state.payment_method_id or not state.gateway_customer_id:
        return "no_payment_method"
    request = charge_request(state, invoice.invoice_id, attempt, due, invoice.currency)
    baseline = run.generation.baseline
    try:
        if baseline:  # one activity charges and records the payment
            outcome = await _charge_and_record(
                run, ChargeAndRecordRequest(request, workflow.now()), local_first=local_first
            )
        else:
            outcome = await workflow.execute_activity_method(
                BillingActivities.charge_invoice,
                request,
                start_to_close_timeout=CHARGE_TIMEOUT,
                retry_policy=CHARGE_RETRY,
            )
    except ActivityError as err:
        # The invoice stays unpaid as a decline would leave it, with the error type.
        return error_type(err.cause)
    if isinstance(outcome, str):  # the local attempt's definitive error, likewise
        return outcome
    if isinstance(outcome, ChargeSucceeded):
        if baseline:
            state.set_invoice_status(invoice.invoice_id, "paid")
        else:
            await mark_paid(
                run, invoice.invoice_id, outcome.payment_intent_id, outcome.amount.amount
            )
        state.record_payment(outcome.amount.amount, workflow.now())
    state.last_event = f"charge {outcome.kind} for invoice {invoice.number}"
    return outcome


async def _charge_and_record(
    run: Run, request: ChargeAndRecordRequest, *, local_first: bool
) -> ChargeOutcome | str:
    """Charge and record the payment; from generation 3 the first attempt runs as a
    local activity.

    A normal activity is what a retried charge needs: a charge cancelled by a stopping
    worker is retried on another worker, where a local activity would be retried on the
    stopping one, holding the workflow task meanwhile. So the local attempt gets one try:
    a decline comes back as a value and a definitive error (a bad token, a detached card)
    stands, while anything undecided (a timeout, a cancellation, the gateway unavailable)
    is charged again by the activity under the same idempotency key, which the gateway
    answers with the first attempt's result if it went through. A stopping worker
    finishes the local charge it has in flight (bounded by the gateway's own timeout)
    rather than abandoning it.

    Returns the outcome, or the error type of a definitive failure of the local attempt;
    the activity's own failures are raised as ActivityError.
    """
    if run.generation.number >= 3 and local_first:
        try:
            return await workflow.execute_local_activity_method(
                BillingActivities.charge_and_record,
                request,
                start_to_close_timeout=_LOCAL_CHARGE_TIMEOUT,
                retry_policy=_ONE_ATTEMPT,
            )
        except FailureError as err:
            # Replayed from its marker, a local activity's failure is not wrapped in an
            # ActivityError as it was when it happened: both must decide alike.
            cause = err.cause if isinstance(err, ActivityError) else err
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                return error_type(cause)
    # A gateway outage is waited out (with an ops alert), never taken for a decline.
    return await outage.charge(
        run,
        BillingActivities.charge_and_record,
        request,
        start_to_close_timeout=CHARGE_TIMEOUT,
        retry_policy=CHARGE_RETRY,
    )


async def charge_unpaid(
    run: Run,
    unpaid: UnpaidInvoice,
    charge: Callable[[BillingActivities, ChargeRequest], Awaitable[ChargeOutcome]],
) -> ChargeOutcome | None:
    """Charge an unpaid invoice once more (a new attempt number, so a new idempotency
    key). None when the charge activity failed; the error type is on the invoice."""
    unpaid.attempts += 1
    request = charge_request(
        run.state, unpaid.invoice_id, unpaid.attempts, unpaid.amount, unpaid.currency
    )
    try:
        return await workflow.execute_activity_method(
            charge,
            request,
            start_to_close_timeout=CHARGE_TIMEOUT,
            retry_policy=CHARGE_RETRY,
        )
    except ActivityError as err:
        unpaid.decline_reason = error_type(err.cause)
        return None


async def mark_paid(run: Run, invoice_id: str, payment_ref: str, amount: int) -> None:
    await workflow.execute_activity_method(
        BillingActivities.mark_invoice_paid,
        MarkPaidRequest(
            invoice_id=invoice_id, payment_ref=payment_ref, amount=amount, at=workflow.now()
        ),
        retry_policy=RETRY,
        start_to_close_timeout=DB_TIMEOUT,
    )
    run.state.set_invoice_status(invoice_id, "paid")


async def void(run: Run, invoice_id: str, reason: str) -> str:
    """Neutralize the invoice with a credit note (never edited); its id."""
    note = await workflow.execute_activity_method(
        BillingActivities.void_invoice,
        VoidInvoiceRequest(
            invoice_id=invoice_id, key=f"void:{invoice_id}", reason=reason, at=workflow.now()
        ),
        retry_policy=RETRY,
        start_to_close_timeout=DB_TIMEOUT,
    )
    run.state.set_invoice_status(invoice_id, "void")
    return note.credit_note_id


async def settle_unpaid(run: Run, invoice_id: object, payment_ref: str) -> bool:
    """Record an unpaid invoice as paid by ``payment_ref`` and recover the subscription
    once nothing is owed; False when the invoice is not one of the unpaid ones."""
    state = run.state
    unpaid = next((u for u in state.unpaid_invoices if u.invoice_id == invoice_id), None)
    if unpaid is None:
        return False
    try:
        await mark_paid(run, unpaid.invoice_id, payment_ref, unpaid.amount)
    except ActivityError as exc:
        state.last_event = f"could not record payment {payment_ref}: {exc}"
        return False
    state.unpaid_invoices.remove(unpaid)
    state.record_payment(unpaid.amount, workflow.now())
    if unpaid.dunning_workflow_id:
        paid = PaidOutside(payment_ref=payment_ref, amount=unpaid.amount)
        await dunning_link.tell(run, unpaid.dunning_workflow_id, "notify_invoice_paid", paid)
    action = state.pending_action
    if action is not None and action.invoice_id == unpaid.invoice_id:
        if action.status == "waiting":
            state.pending_action = dataclasses.replace(action, status="confirmed")
    state.last_event = f"invoice {unpaid.invoice_id} paid ({payment_ref})"
    if state.unpaid_invoices:
        return True
    state.grace_until = None
    recovery = _RECOVERY.get(state.status)
    if recovery is not None:
        run.apply(recovery, workflow.now())
    return True
