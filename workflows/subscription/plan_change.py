"""Plan changes: decided by policy, applied now or at the period end, reviewed if unpaid.

check:    the lifecycle and ``billing.proration.decide_change`` say whether and how
          (the update's validator runs it, so a refused change never reaches history)
change:   a withdrawal, a swap during the trial, a change scheduled for the period
          end, or a migration now: the unused part of the old plan is credited,
          the new one prorated by exact seconds, invoiced and charged
paid:     the plan switches
unpaid:   the migration halts: the plan stays, the invoice is neutralized by a credit
          note and a ``ManualReviewWorkflow`` child opens for ops, whose resolution
          comes back as ``review_resolved`` (retry, accept or write off)

A portal upgrade is charged on-session with 3-D Secure when the bank asks for it
(``upgrade_payment``); a challenge failed or not completed in time reverts the change
the same way, without a review.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.subscription import card, payments, upgrade_payment
from workflows.subscription.refusals import not_started, refusal
from workflows.subscription.run import DB_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.billing import (
        BillingActivities,
        InvoiceLineInput,
        InvoiceSummary,
        ProrationRecordRequest,
    )
    from billing.catalog import UnknownPlanError, UnknownPriceError
    from billing.gateway import ChargeDeclined, ChargeOutcome, ChargeSucceeded
    from billing.lifecycle import (
        InvalidTransition,
        PortalAction,
        SubscriptionStatus,
        check_action,
    )
    from billing.proration import (
        ChangeDecision,
        ChangeTiming,
        LineKind,
        PlanChangeRefused,
        ProrationResult,
        decide_change,
        prorate,
    )
    from workflows import search_attributes as sa
    from workflows.manual_review import ManualReviewWorkflow, ReviewInput, ReviewResolution
    from workflows.subscription.state import (
        ChangeOutcome,
        ChangePlanResult,
        PlanChangeRecord,
        SubscriptionState,
    )


def check(state: SubscriptionState, plan_id: str, now: datetime) -> ChangeDecision | None:
    """Why a change cannot happen now (raised), or its decision; None withdraws a
    scheduled change (the customer chose the current plan again)."""
    if not state.activated or state.catalog is None or state.period_end is None:
        raise not_started()
    try:
        check_action(state.snapshot(), PortalAction.CHANGE_PLAN, now=now, new_plan_id=plan_id)
        new_price = state.price(plan_id)
        if plan_id == state.plan_id:
            return None
        return decide_change(state.price(), new_price, state.catalog, state.change_policy)
    except (UnknownPlanError, UnknownPriceError) as exc:
        raise ApplicationError(str(exc), type="unknown_plan", non_retryable=True) from None
    except (InvalidTransition, PlanChangeRefused) as exc:
        raise refusal(exc) from None


async def change(
    run: Run,
    change_id: str,
    plan_id: str,
    decision: ChangeDecision | None,
    *,
    on_session: bool = False,
) -> ChangePlanResult:
    """``on_session``: the customer asked in the portal and is there to pass 3-D Secure
    (``upgrade_payment``); ops' retries after a review charge off-session."""
    state = run.state
    now = workflow.now()
    assert state.plan_id is not None and state.period_end is not None
    if decision is None:
        withdrawn = state.pending_plan_id
        state.pending_plan_id = None
        return _result(state, change_id, withdrawn or plan_id, decision, "withdrawn")
    if state.status is SubscriptionStatus.TRIALING:
        # Nothing was billed yet: swap the price; the trial end bills the new one.
        result = _result(state, change_id, plan_id, decision, "swapped_in_trial")
        state.plan_id = plan_id
        return result
    if decision.timing is ChangeTiming.PERIOD_END:
        state.pending_plan_id = plan_id
        return _result(state, change_id, plan_id, decision, "scheduled")
    return await _migrate_now(run, change_id, plan_id, decision, now, on_session)


def _result(
    state: SubscriptionState,
    change_id: str,
    plan_id: str,
    decision: ChangeDecision | None,
    outcome: ChangeOutcome,
) -> ChangePlanResult:
    """Record a change that needs no charge, and answer the update."""
    assert state.plan_id is not None and state.period_end is not None
    now = workflow.now()
    effective = state.period_end if outcome == "scheduled" else now
    state.remember_change(
        PlanChangeRecord(
            change_id=change_id,
            from_plan=state.plan_id,
            to_plan=plan_id,
            kind=str(decision.kind) if decision else "withdrawal",
            requested_at=now,
            effective_at=effective,
            outcome=outcome,
        )
    )
    state.last_event = f"plan change {outcome}: {state.plan_id} → {plan_id}"
    return ChangePlanResult(
        outcome=outcome,
        plan_id=plan_id if outcome == "swapped_in_trial" else state.plan_id,
        pending_plan_id=state.pending_plan_id,
        effective_at=effective,
    )


async def _migrate_now(
    run: Run,
    change_id: str,
    plan_id: str,
    decision: ChangeDecision,
    now: datetime,
    on_session: bool,
) -> ChangePlanResult:
    state = run.state
    assert state.plan_id is not None
    assert state.period_start is not None and state.period_end is not None
    try:
        proration = prorate(
            old_price=state.price(),
            new_price=state.price(plan_id),
            period_start=state.period_start,
            period_end=state.period_end,
            change_at=now,
        )
    except PlanChangeRefused as exc:
        raise refusal(exc) from None
    # The plan switches only once the proration is paid; until then the subscription
    # shows the migration in progress.
    state.migrating_to = plan_id
    try:
        return await _prorate_and_charge(
            run, change_id, plan_id, decision, now, proration, on_session
        )
    finally:
        state.migrating_to = None


def proration_lines(
    change_id: str, proration: ProrationResult, now: datetime, period_end: datetime
) -> list[InvoiceLineInput]:
    """The proration invoice's lines: the unused old plan credited, the new one charged."""
    return [
        InvoiceLineInput(
            line_id=f"{change_id}:{line.kind}",
            description=line.description,
            amount=line.amount,
            tax_inclusive=line.tax_inclusive,
            kind="proration_credit" if line.kind is LineKind.CREDIT else "proration_charge",
            plan_id=line.plan_id,
            period_start=now,
            period_end=period_end,
        )
        for line in proration.lines
    ]


async def _prorate_and_charge(
    run: Run,
    change_id: str,
    plan_id: str,
    decision: ChangeDecision,
    now: datetime,
    proration: ProrationResult,
    on_session: bool,
) -> ChangePlanResult:
    state = run.state
    assert state.plan_id is not None and state.period_end is not None
    old_plan = state.plan_id
    key = f"sub:{state.subscription_id}:change:{change_id}"
    lines = proration_lines(change_id, proration, now, state.period_end)
    invoice = await payments.issue_invoice(run, "proration", key, lines, now, state.period_end)
    await workflow.execute_activity_method(
        BillingActivities.record_proration,
        ProrationRecordRequest(
            audit=dict(proration.audit.to_record()),
            key=f"{key}:audit",
            invoice_id=invoice.invoice_id,
            at=now,
        ),
        retry_policy=RETRY,
        start_to_close_timeout=DB_TIMEOUT,
    )
    if on_session and upgrade_payment.applies():
        outcome = await upgrade_payment.charge(run, invoice, change_id, old_plan, plan_id)
    else:
        outcome = await payments.settle(run, invoice, attempt=1)
    record = PlanChangeRecord(
        change_id=change_id,
        from_plan=old_plan,
        to_plan=plan_id,
        kind=str(decision.kind),
        requested_at=now,
        effective_at=now,
        outcome="applied",
        invoice_id=invoice.invoice_id,
    )
    if outcome is None or isinstance(outcome, ChargeSucceeded):
        state.plan_id = plan_id
        state.remember_change(record)
        state.last_event = f"plan changed {old_plan} → {plan_id}"
        return ChangePlanResult(
            outcome="applied",
            plan_id=plan_id,
            pending_plan_id=state.pending_plan_id,
            effective_at=now,
            invoice_id=invoice.invoice_id,
            amount_charged=invoice.amount_remaining if outcome else 0,
        )
    # The migration halts: back to the original plan, the invoice neutralized by a
    # credit note (never edited), and a review for ops unless the customer simply did
    # not pass 3-D Secure (nothing for ops to decide: the customer may try again).
    credit_note_id = await payments.void(run, invoice.invoice_id, "proration_charge_failed")
    if upgrade_payment.is_authentication_failure(outcome):
        assert isinstance(outcome, str)
        return _reverted(state, record, old_plan, invoice, credit_note_id, None, outcome)
    review = review_input(
        state, change_id, old_plan, plan_id, invoice, credit_note_id, outcome, workflow.now()
    )
    review_id = await _open_review(run, review)
    return _reverted(
        state, record, old_plan, invoice, credit_note_id, review_id, review.decline_reason
    )


def _reverted(
    state: SubscriptionState,
    record: PlanChangeRecord,
    old_plan: str,
    invoice: InvoiceSummary,
    credit_note_id: str,
    review_id: str | None,
    reason: str | None,
) -> ChangePlanResult:
    state.remember_change(
        PlanChangeRecord(
            **{
                **record.__dict__,
                "outcome": "reverted",
                "credit_note_id": credit_note_id,
                "review_workflow_id": review_id,
                "reason": reason,
            }
        )
    )
    why = "charge failed" if review_id else (reason or "charge failed").replace("_", " ")
    state.last_event = f"plan change {old_plan} → {record.to_plan} reverted: {why}"
    return ChangePlanResult(
        outcome="reverted",
        plan_id=old_plan,
        pending_plan_id=state.pending_plan_id,
        effective_at=record.effective_at,
        invoice_id=invoice.invoice_id,
        credit_note_id=credit_note_id,
        review_workflow_id=review_id,
        reason=reason,
    )


def review_input(
    state: SubscriptionState,
    change_id: str,
    from_plan: str,
    to_plan: str,
    invoice: InvoiceSummary,
    credit_note_id: str,
    outcome: ChargeOutcome | str,
    opened_at: datetime,
) -> ReviewInput:
    """What ops review when a migration's proration charge failed."""
    family = reason = None
    if isinstance(outcome, ChargeDeclined):
        family, reason = str(outcome.classification.family), outcome.classification.reason
    elif isinstance(outcome, str):
        reason = outcome
    else:
        reason = outcome.kind
    return ReviewInput(
        subscription_id=state.subscription_id,
        reason="proration_charge_failed",
        invoice_id=invoice.invoice_id,
        credit_note_id=credit_note_id,
        change_id=change_id,
        from_plan=from_plan,
        to_plan=to_plan,
        amount=invoice.amount_remaining,
        currency=invoice.currency,
        decline_family=family,
        decline_reason=reason,
        opened_at=opened_at,
    )


async def _open_review(run: Run, review: ReviewInput) -> str:
    state = run.state
    assert state.customer is not None
    review_id = f"review-{review.invoice_id}"
    await workflow.start_child_workflow(
        ManualReviewWorkflow.run,
        review,
        id=review_id,
        parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.REVIEW_REASON, "proration_charge_failed"),
                SearchAttributePair(sa.CUSTOMER_ID, state.customer.customer_id),
            ]
        ),
        static_summary=f"Review: {review.from_plan} → {review.to_plan} for subscription "
        f"{state.subscription_id}; proration charge failed",
    )
    return review_id


async def resolve_review(run: Run, resolution: ReviewResolution) -> None:
    """Ops resolved a review: a write-off closes it; a retry or an accept applies the
    change again (with a new card when ops gave one)."""
    state = run.state
    state.last_event = f"review {resolution.review_id}: {resolution.action}"
    if resolution.action == "write_off":
        run.publish_now()
        return
    try:
        decision = check(state, resolution.to_plan, workflow.now())
    except ApplicationError as exc:
        state.last_event += f" not applied ({exc.type})"
        run.publish_now()
        return
    try:
        if resolution.payment_method_id:
            await card.set_default(run, resolution.payment_method_id, resolution.review_id)
        await change(run, f"{resolution.review_id}:retry", resolution.to_plan, decision)
    except (ApplicationError, ActivityError) as exc:
        # A signal handler that raised would fail the workflow; record instead.
        state.last_event += f" failed ({type(exc).__name__}: {exc})"
    run.publish_now()
