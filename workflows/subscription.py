"""One durable workflow per subscription (id ``subscription-<subscription id>``).

    run:  [idle until activated]  ->  begin (trial, or first invoice + charge)
          -> wait for the period end (a durable timer that messages can wake)
          -> close the period: cancel at the boundary, or renew (invoice -> tax ->
             finalize -> charge -> mark paid | past_due)
          -> continue-as-new with the state (each boundary, or when the server suggests)

Portal actions are updates whose validators run ``billing.lifecycle.check_action`` and
``billing.proration.decide_change``, so invalid requests never reach history. Handlers
that await activities hold one ``asyncio.Lock`` (so does the period close): concurrent
portal updates run one after another. Gateway events arrive as the ``gateway_event``
signal and are ordered by ``billing.events.EventBuffer``.

Every rejection and refusal is an ``ApplicationError`` whose ``type`` is the
machine-readable reason code (``billing.lifecycle.ReasonCode``,
``billing.proration.RefusalCode``, or one of ``unknown_plan``,
``invalid_payment_method``, ``not_started``).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    # Modules whose types cross the data converter must be in the sandbox's own module
    # table, or pydantic cannot resolve their (string) annotations.
    import billing.declines
    import billing.money
    import billing.periods  # noqa: F401
    import tax.model  # noqa: F401
    from activities.billing import (
        BillingActivities,
        ChargeRequest,
        CreateInvoiceRequest,
        InvoiceLineInput,
        InvoiceSummary,
        MarkPaidRequest,
        PaymentMethodRequest,
        ProrationRecordRequest,
        TaxQuoteRequest,
        VoidInvoiceRequest,
    )
    from billing.catalog import Price, UnknownPlanError, UnknownPriceError
    from billing.events import GatewayEvent, SubscriptionStart
    from billing.gateway import ChargeDeclined, ChargeOutcome, ChargeSucceeded
    from billing.lifecycle import (
        TERMINAL_STATUSES,
        InvalidTransition,
        PortalAction,
        SubscriptionStatus,
        TransitionRecord,
        Trigger,
        check_action,
        transition,
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
    from workflows.manual_review import (
        PAYMENT_METHOD_TOKEN,
        REVIEW_RESOLVED_SIGNAL,
        ManualReviewWorkflow,
        ReviewInput,
        ReviewResolution,
    )
    from workflows.subscription_state import (
        CancellationResult,
        ChangePlanRequest,
        ChangePlanResult,
        InvoicePurpose,
        InvoiceRecord,
        PlanChangeRecord,
        SetPaymentMethodRequest,
        SubscriptionInput,
        SubscriptionState,
        UnpaidInvoice,
        details_markdown,
        next_period,
        trial_end,
    )
    from workflows.subscription_state import ChangeOutcome as PlanChangeOutcome

# An event-started workflow that nobody activates ends after this; later events restart it.
IDLE_TIMEOUT = timedelta(days=7)
# Stripe expires a subscription whose first invoice stays unpaid for 23 hours.
FIRST_PAYMENT_WINDOW = timedelta(hours=23)

_DB_TIMEOUT = timedelta(seconds=30)
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
# A charge is retried only on gateway unavailability; declines come back as values.
_CHARGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
)

# The run argument: a new subscription, an event-started idle one (signal-with-start
# from the webhook intake), or the state carried by continue-as-new. pydantic tries each
# member: the ``shape`` literals keep input and state apart, and SubscriptionStart (whose
# only field both others also have) wins ties by coming before SubscriptionState.
SubscriptionRunInput = SubscriptionInput | SubscriptionStart | SubscriptionState


def _refusal(exc: InvalidTransition | PlanChangeRefused) -> ApplicationError:
    return ApplicationError(exc.message, type=str(exc.reason_code), non_retryable=True)


@workflow.defn(name="SubscriptionWorkflow")
class SubscriptionWorkflow:
    @workflow.init
    def __init__(self, start: SubscriptionRunInput) -> None:
        if isinstance(start, SubscriptionState):
            self._state = start
        elif isinstance(start, SubscriptionInput):
            self._state = SubscriptionState.from_input(start)
        else:
            self._state = SubscriptionState(subscription_id=start.subscription_id)
        self._lock = asyncio.Lock()
        self._wake = False
        self._next_timer = "—"
        self._published: dict[str, object] = {}

    # --- main line ----------------------------------------------------------------------

    @workflow.run
    async def run(self, start: SubscriptionRunInput) -> SubscriptionState:
        state = self._state
        if not state.activated:
            self._publish("idle: waiting for the subscription to be created")
            try:
                await workflow.wait_condition(lambda: state.activated, timeout=IDLE_TIMEOUT)
            except TimeoutError:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return state
        if state.catalog is None:
            state.catalog = await workflow.execute_activity_method(
                BillingActivities.load_catalog,
                state.catalog_version,
                retry_policy=_RETRY,
                start_to_close_timeout=_DB_TIMEOUT,
            )
        if state.period_start is None:
            await self._wait_until_start()
            async with self._lock:
                await self._begin()
            if state.status is SubscriptionStatus.INCOMPLETE:
                await self._expire_unless_paid()
        while state.status not in TERMINAL_STATUSES:
            if await self._wait_for_period_end():
                async with self._lock:
                    await self._close_period()
                if state.status in TERMINAL_STATUSES:
                    break
                await self._continue_as_new()
            elif workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new()
        self._publish("none: the subscription has ended")
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state

    async def _wait_until_start(self) -> None:
        assert self._state.start_at is not None
        delay = self._state.start_at - workflow.now()
        if delay > timedelta(0):
            self._publish(f"start at {self._state.start_at.isoformat()}")
            await workflow.sleep(delay)

    async def _wait_for_period_end(self) -> bool:
        """True at the period end; False when woken early to continue as new."""
        state = self._state
        while True:
            assert state.period_end is not None
            remaining = state.period_end - workflow.now()
            if remaining <= timedelta(0):
                return True
            self._wake = False
            self._publish(f"period end at {state.period_end.isoformat()}")
            try:
                await workflow.wait_condition(
                    lambda: self._wake or workflow.info().is_continue_as_new_suggested(),
                    timeout=remaining,
                )
            except TimeoutError:
                continue
            if not self._wake:
                return False

    async def _continue_as_new(self) -> None:
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._state.trim()
        self._state.runs += 1
        workflow.continue_as_new(self._state)

    # --- lifecycle steps ----------------------------------------------------------------

    async def _begin(self) -> None:
        state = self._state
        assert state.start_at is not None
        price = state.price()
        if state.trial and price.trial_days:
            ends = trial_end(state.start_at, price.trial_days)
            state.anchor, state.period_start, state.period_end = ends, state.start_at, ends
            self._apply(Trigger.TRIAL_STARTED, state.start_at)
            return
        state.anchor = state.start_at
        state.period_start, state.period_end = next_period(price, state.anchor, state.start_at)
        if await self._bill_period("first", price):
            self._apply(Trigger.FIRST_PAYMENT_SUCCEEDED, workflow.now())

    async def _expire_unless_paid(self) -> None:
        """The first invoice stays open (without the lock held, so a payment event can
        settle it) for FIRST_PAYMENT_WINDOW; then it is voided and the subscription
        expires."""
        state = self._state
        self._publish(f"first payment due within {FIRST_PAYMENT_WINDOW}")
        try:
            await workflow.wait_condition(
                lambda: state.status is not SubscriptionStatus.INCOMPLETE,
                timeout=FIRST_PAYMENT_WINDOW,
            )
            return
        except TimeoutError:
            pass
        async with self._lock:
            if state.status is not SubscriptionStatus.INCOMPLETE:
                return
            for unpaid in list(state.unpaid_invoices):
                await self._void(unpaid.invoice_id, "first_payment_failed_expired")
            state.unpaid_invoices.clear()
            self._apply(Trigger.FIRST_PAYMENT_FAILED_EXPIRED, workflow.now())

    async def _close_period(self) -> None:
        state = self._state
        boundary = state.period_end
        assert boundary is not None and state.anchor is not None
        if state.cancel_at_period_end:
            # Access ends exactly at the boundary; nothing is billed for the next period.
            self._apply(Trigger.PERIOD_ENDED_CANCEL, boundary)
            return
        was_trialing = state.status is SubscriptionStatus.TRIALING
        if state.pending_plan_id is not None:
            self._apply_scheduled_change(boundary)
        price = state.price()
        state.period_start, state.period_end = next_period(price, state.anchor, boundary)
        if state.status is SubscriptionStatus.UNPAID:
            # No new invoices while unpaid; access stays off until the debt is paid.
            self._publish_now()
            return
        paid = await self._bill_period("renewal", price)
        if was_trialing:
            self._apply(Trigger.TRIAL_ENDED_PAID if paid else Trigger.TRIAL_ENDED_UNPAID, boundary)
        elif paid:
            if state.status is SubscriptionStatus.ACTIVE:
                self._apply(Trigger.RENEWAL_PAID, boundary)
        else:
            self._apply(Trigger.RENEWAL_FAILED, boundary)

    def _apply_scheduled_change(self, boundary: datetime) -> None:
        state = self._state
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

    async def _bill_period(self, purpose: InvoicePurpose, price: Price) -> bool:
        """Invoice the current period in advance and charge it; True when paid."""
        state = self._state
        assert state.period_start is not None and state.period_end is not None
        line = InvoiceLineInput(
            line_id=f"{price.plan_id}:{state.period_start.isoformat()}",
            description=f"{price.plan_id} from {state.period_start:%Y-%m-%d} "
            f"to {state.period_end:%Y-%m-%d}",
            amount=price.amount,
            tax_inclusive=price.tax_inclusive,
            plan_id=price.plan_id,
            period_start=state.period_start,
            period_end=state.period_end,
        )
        key = f"sub:{state.subscription_id}:period:{state.period_start.isoformat()}"
        invoice = await self._invoice(purpose, key, [line], state.period_start, state.period_end)
        outcome = await self._settle(invoice, attempt=1)
        if isinstance(outcome, ChargeSucceeded) or invoice.amount_remaining <= 0:
            return True
        self._record_unpaid(invoice, outcome)
        return False

    # --- invoices and charges -----------------------------------------------------------

    async def _invoice(
        self,
        purpose: InvoicePurpose,
        key: str,
        lines: list[InvoiceLineInput],
        period_start: datetime,
        period_end: datetime,
    ) -> InvoiceSummary:
        state = self._state
        assert state.customer is not None and state.currency is not None
        at = workflow.now()
        quote = await workflow.execute_activity_method(
            BillingActivities.quote_tax,
            TaxQuoteRequest(customer=state.customer, currency=state.currency, lines=lines, at=at),
            retry_policy=_RETRY,
            start_to_close_timeout=_DB_TIMEOUT,
        )
        invoice = await workflow.execute_activity_method(
            BillingActivities.create_invoice,
            CreateInvoiceRequest(
                key=key,
                subscription_id=state.subscription_id,
                customer=state.customer,
                currency=state.currency,
                lines=lines,
                period_start=period_start,
                period_end=period_end,
                quote=quote,
                at=at,
            ),
            retry_policy=_RETRY,
            start_to_close_timeout=_DB_TIMEOUT,
        )
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
        return invoice

    async def _settle(self, invoice: InvoiceSummary, attempt: int) -> ChargeOutcome | str | None:
        """Charge what is due and mark the invoice paid on success.

        Returns the charge outcome, a failure reason string when no charge could be
        made, or None when nothing was due.
        """
        state = self._state
        if invoice.amount_remaining <= 0:
            return None
        if not state.payment_method_id or not state.gateway_customer_id:
            return "no_payment_method"
        request = ChargeRequest(
            subscription_id=state.subscription_id,
            invoice_id=invoice.invoice_id,
            attempt=attempt,
            gateway_customer_id=state.gateway_customer_id,
            payment_method_id=state.payment_method_id,
            amount=invoice.amount_remaining,
            currency=invoice.currency,
        )
        try:
            outcome = await workflow.execute_activity_method(
                BillingActivities.charge_invoice,
                request,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_CHARGE_RETRY,
            )
        except ActivityError as err:
            # A bad token, a detached card, or the gateway down past the retries: the
            # invoice stays unpaid as a decline would leave it, with the error type.
            cause = err.cause
            return (
                cause.type if isinstance(cause, ApplicationError) and cause.type else "charge_error"
            )
        if isinstance(outcome, ChargeSucceeded):
            await self._mark_paid(
                invoice.invoice_id, outcome.payment_intent_id, outcome.amount.amount
            )
        state.last_event = f"charge {outcome.kind} for invoice {invoice.number}"
        return outcome

    async def _mark_paid(self, invoice_id: str, payment_ref: str, amount: int) -> None:
        await workflow.execute_activity_method(
            BillingActivities.mark_invoice_paid,
            MarkPaidRequest(
                invoice_id=invoice_id, payment_ref=payment_ref, amount=amount, at=workflow.now()
            ),
            retry_policy=_RETRY,
            start_to_close_timeout=_DB_TIMEOUT,
        )
        self._state.set_invoice_status(invoice_id, "paid")

    async def _void(self, invoice_id: str, reason: str) -> str:
        note = await workflow.execute_activity_method(
            BillingActivities.void_invoice,
            VoidInvoiceRequest(
                invoice_id=invoice_id, key=f"void:{invoice_id}", reason=reason, at=workflow.now()
            ),
            retry_policy=_RETRY,
            start_to_close_timeout=_DB_TIMEOUT,
        )
        self._state.set_invoice_status(invoice_id, "void")
        return note.credit_note_id

    def _record_unpaid(self, invoice: InvoiceSummary, outcome: ChargeOutcome | str | None) -> None:
        family = reason = payment_intent = None
        if isinstance(outcome, ChargeDeclined):
            family, reason = str(outcome.classification.family), outcome.classification.reason
            payment_intent = outcome.payment_intent_id
        elif isinstance(outcome, str):
            reason = outcome
        elif outcome is not None:  # processing, or 3-D Secure asked of the customer
            reason, payment_intent = outcome.kind, outcome.payment_intent_id
        unpaid = UnpaidInvoice(
            invoice_id=invoice.invoice_id,
            amount=invoice.amount_remaining,
            currency=invoice.currency,
            attempts=1,
            decline_family=family,
            decline_reason=reason,
            payment_intent_id=payment_intent,
            recorded_at=workflow.now(),
        )
        self._state.unpaid_invoices.append(unpaid)
        self._state.last_event = f"invoice {invoice.number} unpaid ({family or '—'}/{reason})"
        self._hand_to_dunning(unpaid)

    def _hand_to_dunning(self, unpaid: UnpaidInvoice) -> None:
        """The dunning seam: the unpaid invoice waits in ``unpaid_invoices``.

        The dunning workflow arrives as a ``workflow.patched("dunning-child")`` change
        here: it will start a child per unpaid invoice and set ``dunning_workflow_id``.
        """

    # --- plan changes -------------------------------------------------------------------

    def _check_change(self, plan_id: str) -> ChangeDecision | None:
        """Why a change cannot happen now (raised), or its decision; None withdraws a
        scheduled change (the customer chose the current plan again)."""
        state = self._state
        if not state.activated or state.catalog is None or state.period_end is None:
            raise ApplicationError("the subscription has not started", type="not_started")
        try:
            check_action(
                state.snapshot(), PortalAction.CHANGE_PLAN, now=workflow.now(), new_plan_id=plan_id
            )
            new_price = state.price(plan_id)
            if plan_id == state.plan_id:
                return None
            return decide_change(state.price(), new_price, state.catalog, state.change_policy)
        except (UnknownPlanError, UnknownPriceError) as exc:
            raise ApplicationError(str(exc), type="unknown_plan", non_retryable=True) from None
        except (InvalidTransition, PlanChangeRefused) as exc:
            raise _refusal(exc) from None

    @workflow.update
    async def change_plan(self, request: ChangePlanRequest) -> ChangePlanResult:
        async with self._lock:
            decision = self._check_change(request.plan_id)  # the state may have moved on
            update = workflow.current_update_info()
            change_id = update.id if update else str(workflow.uuid4())
            result = await self._change_plan(change_id, request.plan_id, decision)
            self._wake = True
            self._publish_now()
            return result

    @change_plan.validator
    def _validate_change_plan(self, request: ChangePlanRequest) -> None:
        self._check_change(request.plan_id)

    async def _change_plan(
        self, change_id: str, plan_id: str, decision: ChangeDecision | None
    ) -> ChangePlanResult:
        state = self._state
        now = workflow.now()
        assert state.plan_id is not None and state.period_end is not None
        if decision is None:
            withdrawn = state.pending_plan_id
            state.pending_plan_id = None
            return self._change_result(change_id, withdrawn or plan_id, decision, "withdrawn")
        if state.status is SubscriptionStatus.TRIALING:
            # Nothing was billed yet: swap the price; the trial end bills the new one.
            result = self._change_result(change_id, plan_id, decision, "swapped_in_trial")
            state.plan_id = plan_id
            return result
        if decision.timing is ChangeTiming.PERIOD_END:
            state.pending_plan_id = plan_id
            return self._change_result(change_id, plan_id, decision, "scheduled")
        return await self._migrate_now(change_id, plan_id, decision, now)

    def _change_result(
        self,
        change_id: str,
        plan_id: str,
        decision: ChangeDecision | None,
        outcome: PlanChangeOutcome,
    ) -> ChangePlanResult:
        state = self._state
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
        self, change_id: str, plan_id: str, decision: ChangeDecision, now: datetime
    ) -> ChangePlanResult:
        state = self._state
        assert state.plan_id is not None
        assert state.period_start is not None and state.period_end is not None
        old_price, new_price = state.price(), state.price(plan_id)
        try:
            proration = prorate(
                old_price=old_price,
                new_price=new_price,
                period_start=state.period_start,
                period_end=state.period_end,
                change_at=now,
            )
        except PlanChangeRefused as exc:
            raise _refusal(exc) from None
        # The plan switches only once the proration is paid; until then the
        # subscription shows the migration in progress.
        state.migrating_to = plan_id
        try:
            return await self._prorate_and_charge(change_id, plan_id, decision, now, proration)
        finally:
            state.migrating_to = None

    async def _prorate_and_charge(
        self,
        change_id: str,
        plan_id: str,
        decision: ChangeDecision,
        now: datetime,
        proration: ProrationResult,
    ) -> ChangePlanResult:
        state = self._state
        assert state.plan_id is not None and state.period_end is not None
        old_plan = state.plan_id
        key = f"sub:{state.subscription_id}:change:{change_id}"
        lines = [
            InvoiceLineInput(
                line_id=f"{change_id}:{line.kind}",
                description=line.description,
                amount=line.amount,
                tax_inclusive=line.tax_inclusive,
                kind="proration_credit" if line.kind is LineKind.CREDIT else "proration_charge",
                plan_id=line.plan_id,
                period_start=now,
                period_end=state.period_end,
            )
            for line in proration.lines
        ]
        invoice = await self._invoice("proration", key, lines, now, state.period_end)
        await workflow.execute_activity_method(
            BillingActivities.record_proration,
            ProrationRecordRequest(
                audit=dict(proration.audit.to_record()),
                key=f"{key}:audit",
                invoice_id=invoice.invoice_id,
                at=now,
            ),
            retry_policy=_RETRY,
            start_to_close_timeout=_DB_TIMEOUT,
        )
        outcome = await self._settle(invoice, attempt=1)
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
        # credit note (never edited), and a review for ops.
        credit_note_id = await self._void(invoice.invoice_id, "proration_charge_failed")
        review_id = await self._open_review(
            change_id, old_plan, plan_id, invoice, credit_note_id, outcome
        )
        state.remember_change(
            PlanChangeRecord(
                **{
                    **record.__dict__,
                    "outcome": "reverted",
                    "credit_note_id": credit_note_id,
                    "review_workflow_id": review_id,
                }
            )
        )
        state.last_event = f"plan change {old_plan} → {plan_id} reverted: charge failed"
        return ChangePlanResult(
            outcome="reverted",
            plan_id=old_plan,
            pending_plan_id=state.pending_plan_id,
            effective_at=now,
            invoice_id=invoice.invoice_id,
            credit_note_id=credit_note_id,
            review_workflow_id=review_id,
        )

    async def _open_review(
        self,
        change_id: str,
        from_plan: str,
        to_plan: str,
        invoice: InvoiceSummary,
        credit_note_id: str,
        outcome: ChargeOutcome | str,
    ) -> str:
        state = self._state
        assert state.customer is not None
        family = reason = None
        if isinstance(outcome, ChargeDeclined):
            family, reason = str(outcome.classification.family), outcome.classification.reason
        elif isinstance(outcome, str):
            reason = outcome
        else:
            reason = outcome.kind
        review_id = f"review-{invoice.invoice_id}"
        await workflow.start_child_workflow(
            ManualReviewWorkflow.run,
            ReviewInput(
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
                opened_at=workflow.now(),
            ),
            id=review_id,
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.REVIEW_REASON, "proration_charge_failed"),
                    SearchAttributePair(sa.CUSTOMER_ID, state.customer.customer_id),
                ]
            ),
            static_summary=f"Review: {from_plan} → {to_plan} for subscription "
            f"{state.subscription_id}; proration charge failed",
        )
        return review_id

    @workflow.signal(name=REVIEW_RESOLVED_SIGNAL)
    async def review_resolved(self, resolution: ReviewResolution) -> None:
        async with self._lock:
            state = self._state
            state.last_event = f"review {resolution.review_id}: {resolution.action}"
            if resolution.action == "write_off":
                self._publish_now()
                return
            try:
                decision = self._check_change(resolution.to_plan)
            except ApplicationError as exc:
                state.last_event += f" not applied ({exc.type})"
                self._publish_now()
                return
            try:
                if resolution.payment_method_id:
                    await self._set_payment_method(
                        resolution.payment_method_id, resolution.review_id
                    )
                await self._change_plan(
                    f"{resolution.review_id}:retry", resolution.to_plan, decision
                )
            except (ApplicationError, ActivityError) as exc:
                # A signal handler that raised would fail the workflow; record instead.
                state.last_event += f" failed ({type(exc).__name__}: {exc})"
            self._publish_now()

    # --- cancellation and payment method -------------------------------------------------

    def _check_action(self, action: PortalAction) -> None:
        if not self._state.activated or self._state.period_end is None:
            raise ApplicationError("the subscription has not started", type="not_started")
        try:
            check_action(self._state.snapshot(), action, now=workflow.now())
        except InvalidTransition as exc:
            raise _refusal(exc) from None

    @workflow.update
    async def cancel_at_period_end(self) -> CancellationResult:
        async with self._lock:
            self._check_action(PortalAction.CANCEL_AT_PERIOD_END)
            self._state.cancel_at_period_end = True
            self._state.last_event = "cancellation requested for the period end"
            self._publish_now()
            return CancellationResult(True, self._state.period_end)

    @cancel_at_period_end.validator
    def _validate_cancel(self) -> None:
        self._check_action(PortalAction.CANCEL_AT_PERIOD_END)

    @workflow.update
    async def undo_cancellation(self) -> CancellationResult:
        async with self._lock:
            self._check_action(PortalAction.UNDO_CANCELLATION)
            self._state.cancel_at_period_end = False
            self._state.last_event = "cancellation undone"
            self._publish_now()
            return CancellationResult(False, None)

    @undo_cancellation.validator
    def _validate_undo(self) -> None:
        self._check_action(PortalAction.UNDO_CANCELLATION)

    @workflow.update
    async def set_default_payment_method(self, request: SetPaymentMethodRequest) -> None:
        async with self._lock:
            self._validate_payment_method(request)
            update = workflow.current_update_info()
            await self._set_payment_method(
                request.payment_method_id, update.id if update else str(workflow.uuid4())
            )
            # Dunning seam: a new card will retry the unpaid invoices at once.
            self._publish_now()

    @set_default_payment_method.validator
    def _validate_payment_method(self, request: SetPaymentMethodRequest) -> None:
        if not PAYMENT_METHOD_TOKEN.fullmatch(request.payment_method_id):
            raise ApplicationError(
                "a payment method must be a gateway token (pm_…)",
                type="invalid_payment_method",
                non_retryable=True,
            )
        self._check_action(PortalAction.SET_DEFAULT_PAYMENT_METHOD)

    async def _set_payment_method(self, payment_method_id: str, key: str) -> None:
        state = self._state
        assert state.gateway_customer_id is not None
        await workflow.execute_activity_method(
            BillingActivities.set_default_payment_method,
            PaymentMethodRequest(
                gateway_customer_id=state.gateway_customer_id,
                payment_method_id=payment_method_id,
                key=f"sub:{state.subscription_id}:pm:{key}",
            ),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=1),
                maximum_interval=timedelta(minutes=1),
                non_retryable_error_types=["InvalidGatewayRequest", "IdempotencyConflict"],
            ),
            start_to_close_timeout=_DB_TIMEOUT,
        )
        state.payment_method_id = payment_method_id
        state.last_event = "default payment method changed"

    # --- activation and gateway events ---------------------------------------------------

    @workflow.update
    def activate(self, start: SubscriptionInput) -> None:
        """Give an event-started (idle) workflow its subscription."""
        if not self._state.activated:
            self._state.activate(start)
            self._state.last_event = "subscription created"

    @activate.validator
    def _validate_activate(self, start: SubscriptionInput) -> None:
        if start.subscription_id != self._state.subscription_id:
            raise ApplicationError("subscription id mismatch", type="subscription_id_mismatch")
        if self._state.activated and self._state.plan_id != start.plan_id:
            raise ApplicationError("the subscription already exists", type="already_started")

    @workflow.signal
    async def gateway_event(self, event: GatewayEvent) -> None:
        # Ordering happens before the first await, so events keep their arrival order.
        ready = self._state.events.offer(event, workflow.now())
        self._state.last_event = f"gateway event {event.type} ({event.event_id})"
        if not ready:
            self._publish_now()
            return
        async with self._lock:
            for applied in ready:
                await self._apply_event(applied)
            self._publish_now()

    async def _apply_event(self, event: GatewayEvent) -> None:
        if event.type not in ("invoice.paid", "payment_intent.succeeded"):
            return
        metadata = event.payload.get("metadata") or {}
        invoice_id = metadata.get("dunwell_invoice_id") if isinstance(metadata, dict) else None
        state = self._state
        unpaid = next((u for u in state.unpaid_invoices if u.invoice_id == invoice_id), None)
        if unpaid is None:
            return
        try:
            await self._mark_paid(unpaid.invoice_id, event.object_id, unpaid.amount)
        except ActivityError as exc:
            state.last_event = f"could not record payment {event.object_id}: {exc}"
            return
        state.unpaid_invoices.remove(unpaid)
        if state.unpaid_invoices:
            return
        recovery = {
            SubscriptionStatus.INCOMPLETE: Trigger.FIRST_PAYMENT_SUCCEEDED,
            SubscriptionStatus.PAST_DUE: Trigger.DUNNING_RECOVERED,
            SubscriptionStatus.UNPAID: Trigger.PAYMENT_AFTER_UNPAID,
        }.get(state.status)
        if recovery is not None:
            self._apply(recovery, workflow.now())

    # --- queries and visibility ----------------------------------------------------------

    @workflow.query
    def state(self) -> SubscriptionState:
        return self._state

    @workflow.query
    def transitions(self) -> list[TransitionRecord]:
        return list(self._state.transitions)

    def _apply(self, trigger: Trigger, at: datetime) -> None:
        state = self._state
        state.status, record = transition(state.status, trigger, at)
        state.transitions.append(record)
        state.last_event = f"{record.from_status} → {record.to_status} ({trigger})"
        self._publish_now()

    def _publish_now(self) -> None:
        self._publish(self._next_timer)

    def _publish(self, next_timer: str) -> None:
        state = self._state
        self._next_timer = next_timer
        updates: list[SearchAttributeUpdate[Any]] = [
            sa.STATUS.value_set(str(state.status)),
            sa.CANCEL_AT_PERIOD_END.value_set(state.cancel_at_period_end),
            sa.BUFFERED_EVENTS.value_set(state.events.buffered_count),
        ]
        if state.customer is not None:
            updates.append(sa.CUSTOMER_ID.value_set(state.customer.customer_id))
        if state.plan_id is not None:
            updates.append(sa.PLAN.value_set(state.plan_id))
        if state.period_end is not None:
            updates.append(sa.PERIOD_END.value_set(state.period_end))
        # Upsert only what changed: every upsert is an event in history.
        changed = [u for u in updates if self._published.get(u.key.name) != u.value]
        if changed:
            workflow.upsert_search_attributes(changed)
            self._published.update({u.key.name: u.value for u in changed})
        workflow.set_current_details(details_markdown(state, workflow.now(), next_timer))
