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

Unpaid renewals go to a ``DunningWorkflow`` child per invoice (``dunning-<invoice id>``).
Continue-as-new waits while a child started by this run is still running (a dunning run
is bounded by its policy window, at most weeks), so the child's completion reaches a live
run; the child is started with ``ParentClosePolicy.ABANDON`` so that a subscription that
ends first (canceled at its period end) does not cut short the invoice's end action. The
child signals its result back (``dunning_finished``), and the result is kept in state
until applied: a recovery at once, a stop's end action exactly at its
``revoke_access_at`` (a durable timer in ``_watch_dunning``).
Customer cancellation, a new default card, card-updater events and payments made
elsewhere are forwarded to the children as signals; the cancellation is delivered before
the update returns, and the child then never starts another charge.

Every rejection and refusal is an ``ApplicationError`` whose ``type`` is the
machine-readable reason code (``billing.lifecycle.ReasonCode``,
``billing.proration.RefusalCode``, or one of ``unknown_plan``,
``invalid_payment_method``, ``not_started``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    # Modules whose types cross the data converter must be in the sandbox's own module
    # table, or pydantic cannot resolve their (string) annotations.
    import billing.declines
    import billing.money
    import billing.periods  # noqa: F401
    import tax.model  # noqa: F401
    from activities.billing import (
        BillingActivities,
        ChargeAndRecordRequest,
        ChargeRequest,
        InvoiceLineInput,
        InvoiceSummary,
        IssueInvoiceRequest,
        MarkPaidRequest,
        PaymentMethodRequest,
        ProrationRecordRequest,
        VoidInvoiceRequest,
    )
    from activities.dunning import DunningActivities, UtcOffsetRequest
    from activities.gateway_sync import GatewaySyncActivities, ResyncRequest, ResyncResult
    from activities.notifications import CustomerNoticeKind, NotificationRequest
    from billing.catalog import Price, UnknownPlanError, UnknownPriceError
    from billing.declines import CustomerMessage, DeclineFamily, DeclineInfo
    from billing.dunning import CardRef, EndAction, policy_for
    from billing.events import Gap, GatewayEvent, SubscriptionStart
    from billing.gateway import (
        ChargeDeclined,
        ChargeOutcome,
        ChargeRequiresAction,
        ChargeSucceeded,
        PaymentMethodDetails,
    )
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
    from billing.money import Money
    from billing.proration import (
        ChangeDecision,
        ChangeTiming,
        LineKind,
        PlanChangeRefused,
        ProrationResult,
        decide_change,
        prorate,
    )
    from billing.sca import challenge_decision
    from workflows import search_attributes as sa
    from workflows.dunning import (
        DUNNING_FINISHED_SIGNAL,
        CardUpdaterUpdate,
        DunningInput,
        DunningResult,
        DunningWorkflow,
        PaidOutside,
        PaymentMethodUpdate,
        dunning_workflow_id,
    )
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
        ConfirmationRefused,
        ConfirmPaymentRequest,
        DunningOutcome,
        InvoicePurpose,
        InvoiceRecord,
        Notice,
        PaymentConfirmation,
        PaymentMethodInfo,
        PendingAction,
        PlanChangeRecord,
        ResyncRecord,
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
# A charge's first attempt as a local activity (generation 3): one attempt, bounded so a
# stopping worker is not held long; whatever it leaves undecided goes to the activity.
_LOCAL_CHARGE_TIMEOUT = timedelta(seconds=30)
_ONE_ATTEMPT = RetryPolicy(maximum_attempts=1)

# Behaviour added to running workflows; each name is a workflow.patched() marker.
PATCH_GAP_RESYNC = "gateway-gap-resync"
PATCH_CARD_DETAILS = "card-details-and-expiry"
PATCH_CARD_UPDATER = "card-updater-retry"
PATCH_ACTION_REQUIRED = "renewal-action-required"
PATCH_DUNNING_CHILD = "dunning-child"
PATCH_CUSTOMER_NOTICES = "customer-notices"
PATCH_UNDO_RESUMES_DUNNING = "undo-resumes-dunning"
PATCH_NOTICES_OUTSIDE_LOCK = "notices-outside-lock"
# One marker for a run started by this version: every patch above applies, the tax quote
# and the invoice run as local activities, one activity charges an invoice and records
# the payment, and search attributes carried over by continue-as-new are not upserted
# again. Each patch marker costs an event and a TemporalChangeVersion upsert, in every run.
PATCH_BASELINE = "baseline-2026-11"
# Generations of this workflow's code. A run's generation decides the behaviour that
# changes its commands. A first run learns it from a patch marker (one per run: the
# newest it knows); a run continued as new reads it from the carried state, so it records
# no marker and no TemporalChangeVersion upsert at all.
#   1: PATCH_BASELINE.
#   2: the tax quote and the invoice are one local activity (``billing.issue_invoice``);
#      no card-expiry timer is started that would only fire after the period end (the
#      run continues as new first; the next run starts it when it is due); and the
#      search attributes a renewal changes go to the next run with continue-as-new
#      instead of an upsert just before it.
#   3: a charge's first attempt is a local activity, in the workflow task that issued the
#      invoice: a renewal then takes no activity task and one workflow task fewer. Only
#      a definitive (non-retryable) failure of that attempt stands; a timeout, a
#      cancellation (a stopping worker) or a retryable gateway error falls back to the
#      normal charge activity with its retries, under the same idempotency key.
PATCH_GENERATION_2 = "generation-2"
PATCH_GENERATION_3 = "generation-3"
GENERATION = 3
# The marker a first run of each generation records (TemporalChangeVersion shows it).
GENERATION_MARKERS = {2: PATCH_GENERATION_2, 3: PATCH_GENERATION_3}
CHANGE_VERSION = SearchAttributeKey.for_keyword_list("TemporalChangeVersion")

_GATEWAY_READ_TIMEOUT = timedelta(seconds=60)
# Keys of sent notices kept in state; notices are trimmed to RECENT_LIMIT, so this covers them.
RECENT_NOTICE_KEYS = 48

# The run argument: a new subscription, an event-started idle one (signal-with-start
# from the webhook intake), or the state carried by continue-as-new. pydantic tries each
# member: the ``shape`` literals keep input and state apart, and SubscriptionStart (whose
# only field both others also have) wins ties by coming before SubscriptionState.
SubscriptionRunInput = SubscriptionInput | SubscriptionStart | SubscriptionState


_Param = TypeVar("_Param")
_Result = TypeVar("_Result")


def _authentication_demanded(outcome: ChargeOutcome | str | None) -> bool:
    if isinstance(outcome, ChargeRequiresAction):
        return True
    return (
        isinstance(outcome, ChargeDeclined)
        and outcome.classification.family is DeclineFamily.AUTHENTICATION_REQUIRED
    )


def _charge_error(err: ActivityError) -> str:
    """Why a charge activity failed (a bad token, a detached card, the gateway down past
    the retries): the application error's type."""
    return _error_type(err.cause)


def _error_type(cause: BaseException | None) -> str:
    return cause.type if isinstance(cause, ApplicationError) and cause.type else "charge_error"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
        # While a period closes (generation 2): changed search attributes wait here, for
        # continue-as-new to carry them, or for an upsert if the run goes on.
        self._held: dict[str, SearchAttributeUpdate[Any]] | None = None
        self._watchers: list[asyncio.Task[None]] = []
        self._live_children: set[str] = set()  # dunning children this run started
        self._continue_due = False  # a period boundary passed while children ran
        self._generation = self._run_generation(start)
        carried_generation = isinstance(start, SubscriptionState) and start.generation > 0
        self._marked = self._generation >= 2 and not carried_generation
        self._baseline = self._generation >= 1
        if self._baseline:
            carried = workflow.info().typed_search_attributes
            self._published = {pair.key.name: pair.value for pair in carried}

    @staticmethod
    def _run_generation(start: SubscriptionRunInput) -> int:
        """The first commands of every run, so runs recorded before them replay without
        them: the carried generation, else the newest patch marker this run has."""
        if isinstance(start, SubscriptionState) and start.generation:
            return start.generation
        # The SDK upserts TemporalChangeVersion for the marker, which the run's info does
        # not show: carried search attributes must name it themselves.
        if workflow.patched(PATCH_GENERATION_3):
            return 3
        if workflow.patched(PATCH_GENERATION_2):
            return 2
        return 1 if workflow.patched(PATCH_BASELINE) else 0

    def _patched(self, patch_id: str) -> bool:
        return self._baseline or workflow.patched(patch_id)

    async def _step(
        self, activity: Callable[[Any, _Param], Awaitable[_Result]], arg: _Param
    ) -> _Result:
        """A short database step of invoicing: a local activity in runs of the baseline
        (no activity task round trip through the server, one marker in history), a
        normal one before."""
        if self._baseline:
            return await workflow.execute_local_activity_method(
                activity, arg, start_to_close_timeout=_DB_TIMEOUT, retry_policy=_RETRY
            )
        return await workflow.execute_activity_method(
            activity, arg, start_to_close_timeout=_DB_TIMEOUT, retry_policy=_RETRY
        )

    # --- main line ----------------------------------------------------------------------

    @workflow.run
    async def run(self, start: SubscriptionRunInput) -> SubscriptionState:
        state = self._state
        self._start_watchers()
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
                if self._generation >= 2:
                    self._held = {}
                async with self._lock:
                    await self._close_period()
                if state.status in TERMINAL_STATUSES:
                    self._release_held()
                    break
                if self._live_children:
                    self._release_held()
                    self._continue_due = True  # once the dunning children have closed
                    continue
                await self._continue_as_new()
            elif self._may_continue_as_new():
                await self._continue_as_new()
        self._publish("none: the subscription has ended")
        # A dunning run closes on its own (a cancellation stops it at the grace end, after
        # its invoice end action); the subscription's run ends after it.
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and not self._live_children
        )
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
                    lambda: self._wake or self._may_continue_as_new(),
                    timeout=remaining,
                )
            except TimeoutError:
                continue
            if not self._wake:
                return False

    def _ready_to_continue(self) -> bool:
        return workflow.all_handlers_finished() and not self._unsent_notices()

    def _may_continue_as_new(self) -> bool:
        wanted = self._continue_due or workflow.info().is_continue_as_new_suggested()
        return wanted and not self._live_children

    async def _continue_as_new(self) -> None:
        # Also wait for a watcher's gateway re-sync (it holds the lock, not a handler):
        # cut short, it would leave a payment recorded in the ledger but not in state.
        # Notices go out first: an activity scheduled alongside continue-as-new is lost.
        if self._lock.locked() or not self._ready_to_continue():
            self._release_held()  # ops see the new period while this run finishes
        while True:
            await workflow.wait_condition(self._ready_to_continue)
            await self._lock.acquire()
            if self._ready_to_continue():
                break
            self._lock.release()
        self._state.trim()
        self._state.runs += 1
        self._state.generation = GENERATION  # the next run runs this code
        if self._held:
            carried = {pair.key.name: pair for pair in workflow.info().typed_search_attributes}
            if self._marked:  # what the SDK upserted for the marker (see _run_generation)
                carried[CHANGE_VERSION.name] = SearchAttributePair(
                    CHANGE_VERSION, [GENERATION_MARKERS[self._generation]]
                )
            for update in self._held.values():
                carried[update.key.name] = SearchAttributePair(update.key, update.value)
            workflow.continue_as_new(
                self._state, search_attributes=TypedSearchAttributes(list(carried.values()))
            )
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
        await self._record_unpaid(invoice, outcome, purpose)
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
        request = IssueInvoiceRequest(
            key=key,
            subscription_id=state.subscription_id,
            customer=state.customer,
            currency=state.currency,
            lines=lines,
            period_start=period_start,
            period_end=period_end,
            at=workflow.now(),
        )
        if self._generation >= 2:
            invoice = await self._step(BillingActivities.issue_invoice, request)
        else:
            quote = await self._step(BillingActivities.quote_tax, request.tax_request())
            invoice = await self._step(BillingActivities.create_invoice, request.with_quote(quote))
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
            if self._baseline:  # one activity charges and records the payment
                outcome = await self._charge_and_record(
                    ChargeAndRecordRequest(request, workflow.now())
                )
            else:
                outcome = await workflow.execute_activity_method(
                    BillingActivities.charge_invoice,
                    request,
                    start_to_close_timeout=timedelta(seconds=60),
                    retry_policy=_CHARGE_RETRY,
                )
        except ActivityError as err:
            # The invoice stays unpaid as a decline would leave it, with the error type.
            return _charge_error(err)
        if isinstance(outcome, str):  # the local attempt's definitive error, likewise
            return outcome
        if isinstance(outcome, ChargeSucceeded):
            if self._baseline:
                state.set_invoice_status(invoice.invoice_id, "paid")
            else:
                await self._mark_paid(
                    invoice.invoice_id, outcome.payment_intent_id, outcome.amount.amount
                )
            state.record_payment(outcome.amount.amount, workflow.now())
        state.last_event = f"charge {outcome.kind} for invoice {invoice.number}"
        return outcome

    async def _charge_and_record(self, request: ChargeAndRecordRequest) -> ChargeOutcome | str:
        """Charge and record the payment; from generation 3 the first attempt runs as a
        local activity.

        A normal activity is what a retried charge needs: a charge cancelled by a stopping
        worker is retried on another worker, where a local activity would be retried on
        the stopping one, holding the workflow task meanwhile. So the local attempt gets
        one try: a decline comes back as a value and a definitive error (a bad token, a
        detached card) stands, while anything undecided (a timeout, a cancellation, the
        gateway unavailable) is charged again by the activity under the same idempotency
        key, which the gateway answers with the first attempt's result if it went through.
        A stopping worker finishes the local charge it has in flight (bounded by the
        gateway's own timeout) rather than abandoning it.

        Returns the outcome, or the error type of a definitive failure of the local
        attempt; the activity's own failures are raised as ActivityError.
        """
        if self._generation >= 3:
            try:
                return await workflow.execute_local_activity_method(
                    BillingActivities.charge_and_record,
                    request,
                    start_to_close_timeout=_LOCAL_CHARGE_TIMEOUT,
                    retry_policy=_ONE_ATTEMPT,
                )
            except FailureError as err:
                # Replayed from its marker, a local activity's failure is not wrapped in
                # an ActivityError as it was when it happened: both must decide alike.
                cause = err.cause if isinstance(err, ActivityError) else err
                if isinstance(cause, ApplicationError) and cause.non_retryable:
                    return _error_type(cause)
        return await workflow.execute_activity_method(
            BillingActivities.charge_and_record,
            request,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=_CHARGE_RETRY,
        )

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

    async def _record_unpaid(
        self,
        invoice: InvoiceSummary,
        outcome: ChargeOutcome | str | None,
        purpose: InvoicePurpose,
    ) -> None:
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
            recorded_at=workflow.now(),
        )
        if self._patched(PATCH_DUNNING_CHILD):
            unpaid.first_decline = decline
        self._state.unpaid_invoices.append(unpaid)
        self._state.last_event = f"invoice {invoice.number} unpaid ({family or '—'}/{reason})"
        if (
            purpose == "renewal"
            and payment_intent is not None
            and _authentication_demanded(outcome)
            and self._patched(PATCH_ACTION_REQUIRED)
        ):
            # Dunning waits: the customer may still confirm the same intent on-session.
            self._require_action(unpaid, payment_intent)
            return
        if purpose != "first":  # a first invoice has FIRST_PAYMENT_WINDOW, not dunning
            await self._hand_to_dunning(unpaid)

    async def _hand_to_dunning(self, unpaid: UnpaidInvoice) -> None:
        """Start the invoice's dunning child (runs recorded before the patch leave the
        invoice waiting in ``unpaid_invoices``)."""
        state = self._state
        if not self._patched(PATCH_DUNNING_CHILD) or unpaid.dunning_workflow_id:
            return
        if state.customer is None or state.plan_id is None or not state.gateway_customer_id:
            return
        if not state.payment_method_id:
            state.last_event = f"invoice {unpaid.invoice_id} waits for a payment method"
            return
        policy = policy_for(state.plan_id, state.customer.segment)
        card = await self._card_ref(state.payment_method_id)
        offset = await workflow.execute_activity_method(
            DunningActivities.utc_offset_minutes,
            UtcOffsetRequest(timezone=state.customer.timezone, at=workflow.now()),
            retry_policy=_RETRY,
            start_to_close_timeout=_DB_TIMEOUT,
        )
        child_id = dunning_workflow_id(unpaid.invoice_id)
        start = DunningInput(
            invoice_id=unpaid.invoice_id,
            subscription_id=state.subscription_id,
            customer_id=state.customer.customer_id,
            customer_email=state.customer.email,
            gateway_customer_id=state.gateway_customer_id,
            payment_method_id=state.payment_method_id,
            card=card,
            amount=unpaid.amount,
            currency=unpaid.currency,
            utc_offset_minutes=offset,
            policy_id=policy.policy_id,
            policy_version=policy.version,
            first_decline=unpaid.first_decline,
            started_at=unpaid.recorded_at,
        )
        try:
            child = await workflow.start_child_workflow(
                DunningWorkflow.run,
                start,
                id=child_id,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                static_summary=f"Dunning {unpaid.invoice_id}",
            )
        except FailureError as exc:  # e.g. a dunning run for this invoice already exists
            state.last_event = f"dunning for {unpaid.invoice_id} not started: {exc}"
            return
        unpaid.dunning_workflow_id = child_id
        self._live_children.add(child_id)
        self._watchers.append(asyncio.create_task(self._await_child(child_id, child)))
        grace = unpaid.recorded_at + policy.grace_period
        state.grace_until = max(state.grace_until or grace, grace)
        state.last_event = f"invoice {unpaid.invoice_id} handed to dunning ({policy.key})"
        self._publish_now()

    async def _await_child(
        self, child_id: str, child: workflow.ChildWorkflowHandle[Any, DunningResult]
    ) -> None:
        """The result itself arrives as the ``dunning_finished`` signal (sent before the
        child completes); this only tracks that the child has closed."""
        try:
            await child
        except FailureError as exc:  # failed, terminated or timed out: nothing will report
            self._state.last_event = f"dunning {child_id} ended without a result: {exc}"
        self._live_children.discard(child_id)
        self._wake = True

    async def _card_ref(self, payment_method_id: str) -> CardRef:
        """What network caps count against: the card's fingerprint and brand, read from
        the gateway when the state does not have them."""
        state = self._state
        card = state.payment_method
        if card is None or card.id != payment_method_id or not card.fingerprint:
            try:
                details: PaymentMethodDetails = await workflow.execute_activity_method(
                    GatewaySyncActivities.describe_payment_method,
                    payment_method_id,
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_interval=timedelta(minutes=1),
                        maximum_attempts=5,
                        non_retryable_error_types=["InvalidGatewayRequest"],
                    ),
                    start_to_close_timeout=_GATEWAY_READ_TIMEOUT,
                )
            except ActivityError:
                return CardRef(payment_method_id, card.brand if card and card.brand else "unknown")
            card = PaymentMethodInfo.of(details)
            if payment_method_id == state.payment_method_id:
                state.payment_method = card
        return CardRef(card.fingerprint or card.id, card.brand or "unknown")

    def _dunning_children(self) -> list[str]:
        return [u.dunning_workflow_id for u in self._state.unpaid_invoices if u.dunning_workflow_id]

    async def _tell_dunning(self, child_id: str, signal: str, arg: object = None) -> None:
        handle = workflow.get_external_workflow_handle(child_id)
        try:
            if arg is None:
                await handle.signal(signal)
            else:
                await handle.signal(signal, arg)
        except FailureError:
            # The child has finished; its result signal is on its way or applied.
            self._state.last_event = f"{child_id} has finished; {signal} not delivered"

    @workflow.signal(name=DUNNING_FINISHED_SIGNAL)
    def dunning_finished(self, result: DunningResult) -> None:
        """A dunning child's result; applied by ``_watch_dunning``."""
        state = self._state
        end_action = result.end_action.value if result.end_action is not None else None
        state.dunning_outcomes.append(
            DunningOutcome(
                invoice_id=result.invoice_id,
                outcome=result.outcome,
                reason=result.reason,
                attempts=result.attempts,
                received_at=workflow.now(),
                end_action=end_action,
                revoke_access_at=result.revoke_access_at,
                payment_ref=result.payment_ref,
                duplicate_payment_ref=result.duplicate_payment_ref,
            )
        )
        state.last_event = f"dunning for {result.invoice_id}: {result.outcome} ({result.reason})"

    async def _watch_dunning(self) -> None:
        """Apply dunning results: recoveries at once, stops at their revoke instant."""
        state = self._state
        while True:
            await workflow.wait_condition(lambda: bool(state.dunning_outcomes))
            now = workflow.now()
            due = [o for o in state.dunning_outcomes if o.due_at() <= now]
            if not due:
                wake = min(o.due_at() for o in state.dunning_outcomes)
                count = len(state.dunning_outcomes)

                def arrived(seen: int = count) -> bool:
                    return len(state.dunning_outcomes) != seen

                try:
                    await workflow.wait_condition(
                        arrived, timeout=wake - now, timeout_summary="dunning end action"
                    )
                except TimeoutError:
                    pass
                continue
            async with self._lock:
                for outcome in due:
                    state.dunning_outcomes.remove(outcome)
                    await self._apply_dunning_outcome(outcome)
                self._wake = True  # the main loop re-checks for a terminal status
                self._publish_now()

    async def _apply_dunning_outcome(self, outcome: DunningOutcome) -> None:
        state = self._state
        unpaid = next(
            (u for u in state.unpaid_invoices if u.invoice_id == outcome.invoice_id), None
        )
        if unpaid is None:
            return  # already settled here (paid elsewhere, then forwarded to the child)
        if outcome.duplicate_payment_ref:
            state.last_event = (
                f"invoice {unpaid.invoice_id} paid twice: refund {outcome.duplicate_payment_ref}"
            )
        if outcome.outcome == "recovered":
            # The child has recorded the payment on the invoice.
            state.unpaid_invoices.remove(unpaid)
            state.set_invoice_status(unpaid.invoice_id, "paid")
            state.record_payment(unpaid.amount, workflow.now())
            if not state.unpaid_invoices:
                state.grace_until = None
                if state.status is SubscriptionStatus.PAST_DUE:
                    self._apply(Trigger.DUNNING_RECOVERED, workflow.now())
            return
        unpaid.dunning_workflow_id = None  # the invoice stays owed; a payment still settles it
        # The child stops at its revoke instant and reports a moment later: the record
        # carries the instant policy set (access was already off by grace_until).
        at = outcome.revoke_access_at or outcome.received_at
        state.grace_until = at
        if outcome.reason == "customer_cancelled" and not state.cancel_at_period_end:
            # The undo reached dunning only after it had stopped for the cancellation (a
            # run paused for it resumes instead): the invoice stays owed, for ops to see.
            state.last_event = f"dunning for {unpaid.invoice_id} ended by an undone cancellation"
            return
        if state.status is not SubscriptionStatus.PAST_DUE:
            return
        if outcome.end_action == EndAction.CANCEL.value:
            state.unpaid_invoices.remove(unpaid)
            self._apply(Trigger.DUNNING_EXHAUSTED_CANCEL, at)
        elif outcome.end_action == EndAction.MARK_UNPAID.value:
            self._apply(Trigger.DUNNING_EXHAUSTED_UNPAID, at)

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
            # Delivered before the update returns: no dunning charge starts after this.
            for child_id in self._dunning_children():
                await self._tell_dunning(child_id, "notify_customer_cancelled")
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
            children = self._dunning_children()
            if children and self._patched(PATCH_UNDO_RESUMES_DUNNING):
                # Each paused dunning run picks up its schedule again; one that has
                # already stopped for the cancellation ignores this.
                for child_id in children:
                    await self._tell_dunning(child_id, "notify_cancellation_undone")
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
            children = self._dunning_children()
            if children:  # each dunning child retries once, at once, with the new card
                card = await self._card_ref(request.payment_method_id)
                change = PaymentMethodUpdate(payment_method_id=request.payment_method_id, card=card)
                for child_id in children:
                    await self._tell_dunning(child_id, "notify_payment_method_updated", change)
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
        details = await workflow.execute_activity_method(
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
        state.payment_method = (
            PaymentMethodInfo.of(details)
            if details is not None and details.id == payment_method_id
            else PaymentMethodInfo(payment_method_id)
        )
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
        if event.type == "payment_method.automatically_updated":
            if self._patched(PATCH_CARD_UPDATER):
                await self._apply_card_update(event)
            return
        if event.type not in ("invoice.paid", "payment_intent.succeeded"):
            return
        metadata = event.payload.get("metadata") or {}
        invoice_id = metadata.get("dunwell_invoice_id") if isinstance(metadata, dict) else None
        await self._settle_unpaid(invoice_id, event.object_id)

    async def _settle_unpaid(self, invoice_id: object, payment_ref: str) -> bool:
        """Record an unpaid invoice as paid by ``payment_ref`` and recover the subscription
        once nothing is owed; False when the invoice is not one of the unpaid ones."""
        state = self._state
        unpaid = next((u for u in state.unpaid_invoices if u.invoice_id == invoice_id), None)
        if unpaid is None:
            return False
        try:
            await self._mark_paid(unpaid.invoice_id, payment_ref, unpaid.amount)
        except ActivityError as exc:
            state.last_event = f"could not record payment {payment_ref}: {exc}"
            return False
        state.unpaid_invoices.remove(unpaid)
        state.record_payment(unpaid.amount, workflow.now())
        if unpaid.dunning_workflow_id:
            paid = PaidOutside(payment_ref=payment_ref, amount=unpaid.amount)
            await self._tell_dunning(unpaid.dunning_workflow_id, "notify_invoice_paid", paid)
        action = state.pending_action
        if action is not None and action.invoice_id == unpaid.invoice_id:
            if action.status == "waiting":
                state.pending_action = dataclasses.replace(action, status="confirmed")
        state.last_event = f"invoice {unpaid.invoice_id} paid ({payment_ref})"
        if state.unpaid_invoices:
            return True
        state.grace_until = None
        recovery = {
            SubscriptionStatus.INCOMPLETE: Trigger.FIRST_PAYMENT_SUCCEEDED,
            SubscriptionStatus.PAST_DUE: Trigger.DUNNING_RECOVERED,
            SubscriptionStatus.UNPAID: Trigger.PAYMENT_AFTER_UNPAID,
        }.get(state.status)
        if recovery is not None:
            self._apply(recovery, workflow.now())
        return True

    # --- gateway truth: sequence gaps, the card on file, 3-D Secure on renewals ----------

    def _start_watchers(self) -> None:
        """Background loops of this run; each is a patched behaviour, so runs recorded
        before it replay without it."""
        if self._patched(PATCH_GAP_RESYNC):
            self._watchers.append(asyncio.create_task(self._watch_gaps()))
        if self._patched(PATCH_CARD_DETAILS):
            self._watchers.append(asyncio.create_task(self._watch_card()))
        if self._patched(PATCH_ACTION_REQUIRED):
            self._watchers.append(asyncio.create_task(self._watch_action_deadline()))
        if self._patched(PATCH_DUNNING_CHILD):
            self._watchers.append(asyncio.create_task(self._watch_dunning()))
        if self._patched(PATCH_CUSTOMER_NOTICES):
            self._watchers.append(asyncio.create_task(self._watch_notices()))

    async def _watch_notices(self) -> None:
        """Send each recorded notice once (its key is the notification's key: a retried
        or replayed send finds the row already sent)."""
        while True:
            await workflow.wait_condition(lambda: bool(self._unsent_notices()))
            if self._patched(PATCH_NOTICES_OUTSIDE_LOCK):
                # A mail server that is down must not hold up portal actions.
                await self._send_unsent_notices()
            else:
                async with self._lock:
                    await self._send_unsent_notices()

    async def _send_unsent_notices(self) -> None:
        state = self._state
        for notice in self._unsent_notices():
            request = self._notice_request(notice)
            if request is not None:
                await workflow.execute_activity_method(
                    DunningActivities.notify,
                    request,
                    retry_policy=_RETRY,
                    start_to_close_timeout=timedelta(minutes=2),
                    summary=notice.key,
                )
            state.notices_sent.append(notice.key)
            del state.notices_sent[:-RECENT_NOTICE_KEYS]

    def _unsent_notices(self) -> list[Notice]:
        sent = set(self._state.notices_sent)
        return [n for n in self._state.notices if n.key not in sent]

    def _notice_request(self, notice: Notice) -> NotificationRequest | None:
        state = self._state
        if state.customer is None:
            return None
        card = state.payment_method
        described = (
            f"{card.brand or 'card'} •••• {card.last4}"
            if card is not None and card.id == notice.payment_method_id and card.last4
            else None
        )
        action = state.pending_action
        amount = action.amount if action is not None and notice.kind == "action_required" else 0
        return NotificationRequest(
            key=f"sub:{state.subscription_id}:{notice.key}",
            kind=CustomerNoticeKind(notice.kind),
            customer_id=state.customer.customer_id,
            recipient=state.customer.email,
            invoice_id=notice.invoice_id,
            subscription_id=state.subscription_id,
            amount=amount,
            currency=state.currency or "EUR",
            message=CustomerMessage.CONFIRM_PAYMENT if notice.kind == "action_required" else None,
            deadline=notice.due_at,
            card=described,
            portal_path=notice.portal_path,
        )

    async def _watch_gaps(self) -> None:
        """A relay sequence gap open longer than the policy's timeout is settled by a
        re-sync from the gateway (its current object state is the truth)."""
        state = self._state
        while True:
            await workflow.wait_condition(lambda: state.events.buffered_count > 0)
            timeout = state.gateway_policy.gap_timeout
            now = workflow.now()
            due = state.events.gaps(now, timeout)
            if due:
                async with self._lock:
                    await self._resync(due[-1])
                continue
            holes = state.events.gaps(now, timedelta(0))
            if not holes:
                continue  # cannot happen: buffered relay events always sit behind a hole
            wait = min(g.waiting_since for g in holes) + timeout - now
            count = state.events.buffered_count

            def drained(seen: int = count) -> bool:
                return state.events.buffered_count < seen

            try:
                await workflow.wait_condition(
                    drained,
                    timeout=max(wait, timedelta(seconds=1)),
                )
            except TimeoutError:
                pass

    async def _resync(self, gap: Gap) -> None:
        state = self._state
        waiting_intents = [
            p.event.object_id
            for p in state.events.pending
            if p.event.object_type == "payment_intent"
        ]
        owed_intents = [u.payment_intent_id for u in state.unpaid_invoices if u.payment_intent_id]
        truth = await self._read_gateway([*owed_intents, *waiting_intents], state.payment_method_id)
        settled = await self._apply_truth(truth)
        now = workflow.now()
        ready = state.events.resolve_gap_by_resync(gap, now)
        state.resyncs.append(
            ResyncRecord(
                gap_first=gap.first,
                gap_last=gap.last,
                waiting_since=gap.waiting_since,
                resynced_at=now,
                payment_intents=[i.id for i in truth.intents],
                settled_invoices=settled,
            )
        )
        state.last_event = f"sequence gap {gap.first}..{gap.last} re-synced from the gateway"
        for event in ready:
            await self._apply_event(event)
        self._publish_now()

    async def _read_gateway(
        self, payment_intent_ids: list[str], payment_method_id: str | None
    ) -> ResyncResult:
        return await workflow.execute_activity_method(
            GatewaySyncActivities.resync,
            ResyncRequest(
                subscription_id=self._state.subscription_id,
                payment_intent_ids=payment_intent_ids,
                payment_method_id=payment_method_id,
            ),
            retry_policy=_RETRY,
            start_to_close_timeout=_GATEWAY_READ_TIMEOUT,
        )

    async def _apply_truth(self, truth: ResyncResult) -> list[str]:
        """Settle what the gateway says succeeded; refresh the card on file."""
        state = self._state
        settled: list[str] = []
        for intent in truth.intents:
            if intent.status == "succeeded" and await self._settle_unpaid(
                intent.invoice_id, intent.id
            ):
                settled.append(str(intent.invoice_id))
        card = truth.payment_method
        if card is not None and card.id == state.payment_method_id:
            state.payment_method = PaymentMethodInfo.of(card)
        return settled

    async def _watch_card(self) -> None:
        """Keep the card's details in state and record one expiring-card notice per card,
        ``expiring_card_notice`` before the end of its expiry month."""
        state = self._state
        described: str | None = None
        while True:
            await workflow.wait_condition(
                lambda: state.activated and state.payment_method_id is not None
            )
            card = state.payment_method
            if card is None or card.id != state.payment_method_id:
                card = state.payment_method = PaymentMethodInfo(str(state.payment_method_id))

            def replaced(seen: PaymentMethodInfo = card) -> bool:
                return state.payment_method != seen

            def replaced_or_renewed(
                seen: PaymentMethodInfo = card, period_end: datetime | None = state.period_end
            ) -> bool:
                return state.payment_method != seen or state.period_end != period_end

            if not card.described and described != card.id:
                described = card.id
                await self._describe_card(card.id)
                continue
            expires = card.expires_at()
            noticed = state.expiring_card_noticed == card.expiry_key()
            if expires is not None and not noticed:
                notice_at = expires - state.gateway_policy.expiring_card_notice
                remaining = notice_at - workflow.now()
                period_end = state.period_end
                if self._generation >= 2 and period_end is not None and notice_at > period_end:
                    # The run continues as new at the period end, before the notice is
                    # due: no timer here (a timer is an event and a server task in every
                    # run); when the period end moves on within this run, look again.
                    await workflow.wait_condition(replaced_or_renewed)
                    continue
                if remaining > timedelta(0):
                    try:
                        await workflow.wait_condition(replaced, timeout=remaining)
                        continue
                    except TimeoutError:
                        pass
                if workflow.now() < expires:
                    self._notice_expiring(card, expires)
                    continue
            await workflow.wait_condition(replaced)

    async def _describe_card(self, payment_method_id: str) -> None:
        state = self._state
        try:
            details: PaymentMethodDetails = await workflow.execute_activity_method(
                GatewaySyncActivities.describe_payment_method,
                payment_method_id,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=1),
                    maximum_interval=timedelta(minutes=5),
                    non_retryable_error_types=["InvalidGatewayRequest"],
                ),
                start_to_close_timeout=_GATEWAY_READ_TIMEOUT,
            )
        except ActivityError as exc:
            state.last_event = f"could not read payment method {payment_method_id}: {exc}"
            return
        if details.id == state.payment_method_id:
            state.payment_method = PaymentMethodInfo.of(details)
            self._publish_now()

    def _notice_expiring(self, card: PaymentMethodInfo, expires: datetime) -> None:
        # Recorded in state; _watch_notices sends it (runs since the customer-notices patch).
        state = self._state
        state.expiring_card_noticed = card.expiry_key()
        state.notices.append(
            Notice(
                kind="expiring_card",
                key=f"expiring_card:{card.expiry_key()}",
                at=workflow.now(),
                payment_method_id=card.id,
                due_at=expires,
            )
        )
        state.last_event = f"card {card.brand or ''} •••• {card.last4 or '—'} expires soon"
        self._publish_now()

    async def _apply_card_update(self, event: GatewayEvent) -> None:
        """``payment_method.automatically_updated``: the network account updater refreshed
        the card. Stripe keeps the ``pm_…`` id; a refreshed token for the same gateway
        customer is adopted as well."""
        state = self._state
        payload = event.payload
        owner = payload.get("customer")
        if event.object_id != state.payment_method_id and (
            owner is None or owner != state.gateway_customer_id
        ):
            state.last_event = f"card update for {event.object_id} ignored: not the card on file"
            return
        raw_card = payload.get("card")
        card: dict[str, object] = raw_card if isinstance(raw_card, dict) else {}
        state.payment_method_id = event.object_id
        state.payment_method = PaymentMethodInfo(
            id=event.object_id,
            brand=_str(card.get("brand")),
            last4=_str(card.get("last4")),
            exp_month=_int(card.get("exp_month")),
            exp_year=_int(card.get("exp_year")),
            fingerprint=_str(card.get("fingerprint")),
        )
        state.last_event = f"card on file updated by the account updater ({event.object_id})"
        await self._on_card_updated()

    async def _on_card_updated(self) -> None:
        """One immediate retry of each unpaid invoice on the updated card: a dunning
        child gets the event (its own one immediate retry), other invoices are retried
        here."""
        state = self._state
        for unpaid in list(state.unpaid_invoices):
            if not state.payment_method_id or not state.gateway_customer_id:
                return
            if unpaid.dunning_workflow_id:
                card = state.payment_method
                ref = (
                    CardRef(card.fingerprint or card.id, card.brand or "unknown")
                    if card is not None
                    else None
                )
                update = CardUpdaterUpdate(payment_method_id=state.payment_method_id, card=ref)
                await self._tell_dunning(
                    unpaid.dunning_workflow_id, "notify_card_updater_event", update
                )
                continue
            outcome = await self._charge_unpaid(unpaid, BillingActivities.charge_invoice)
            if outcome is None:
                continue
            if isinstance(outcome, ChargeSucceeded):
                await self._settle_unpaid(unpaid.invoice_id, outcome.payment_intent_id)
                continue
            unpaid.payment_intent_id = outcome.payment_intent_id or unpaid.payment_intent_id
            if isinstance(outcome, ChargeDeclined):
                unpaid.decline_family = str(outcome.classification.family)
                unpaid.decline_reason = outcome.classification.reason
            else:
                unpaid.decline_reason = outcome.kind
            state.last_event = (
                f"retry after card update for invoice {unpaid.invoice_id}: {outcome.kind}"
            )

    async def _charge_unpaid(
        self,
        unpaid: UnpaidInvoice,
        charge: Callable[[BillingActivities, ChargeRequest], Awaitable[ChargeOutcome]],
    ) -> ChargeOutcome | None:
        """Charge an unpaid invoice once more (a new attempt number, so a new idempotency
        key). None when the charge activity failed; the error type is on the invoice."""
        state = self._state
        assert state.payment_method_id and state.gateway_customer_id
        unpaid.attempts += 1
        request = ChargeRequest(
            subscription_id=state.subscription_id,
            invoice_id=unpaid.invoice_id,
            attempt=unpaid.attempts,
            gateway_customer_id=state.gateway_customer_id,
            payment_method_id=state.payment_method_id,
            amount=unpaid.amount,
            currency=unpaid.currency,
        )
        try:
            return await workflow.execute_activity_method(
                charge,
                request,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=_CHARGE_RETRY,
            )
        except ActivityError as err:
            unpaid.decline_reason = _charge_error(err)
            return None

    def _require_action(self, unpaid: UnpaidInvoice, payment_intent_id: str) -> None:
        state = self._state
        assert state.customer is not None
        now = workflow.now()
        deadline = now + state.gateway_policy.action_required_deadline
        decision = challenge_decision(
            state.customer.address.country,
            Money(unpaid.amount, unpaid.currency),
            state.payment_history(),
            now,
        )
        state.pending_action = PendingAction(
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
        # Recorded in state; _watch_notices sends it (runs since the customer-notices patch).
        state.notices.append(
            Notice(
                kind="action_required",
                key=f"action_required:{payment_intent_id}",
                at=now,
                invoice_id=unpaid.invoice_id,
                payment_intent_id=payment_intent_id,
                due_at=deadline,
                portal_path=f"/portal?subscription={state.subscription_id}",
            )
        )
        state.last_event = f"action required: confirm payment for invoice {unpaid.invoice_id}"

    async def _watch_action_deadline(self) -> None:
        """After the deadline, an unconfirmed payment goes to dunning."""
        state = self._state
        while True:
            await workflow.wait_condition(
                lambda: (
                    state.pending_action is not None and state.pending_action.status == "waiting"
                )
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
            async with self._lock:
                if state.pending_action is not action:
                    continue
                state.pending_action = dataclasses.replace(action, status="expired")
                unpaid = next(
                    (u for u in state.unpaid_invoices if u.invoice_id == action.invoice_id), None
                )
                state.last_event = f"payment confirmation for {action.invoice_id} expired"
                if unpaid is not None:
                    await self._hand_to_dunning(unpaid)
                self._publish_now()

    @workflow.update
    async def confirm_payment_completed(self, request: ConfirmPaymentRequest) -> PendingAction:
        """The customer confirmed the pending payment on-session (portal, Stripe.js);
        the gateway's state of the intent decides whether the invoice is paid."""
        async with self._lock:
            action = self._check_confirmation(request)
            truth = await self._read_gateway([action.payment_intent_id], None)
            if not any(i.status == "succeeded" for i in truth.intents):
                raise ApplicationError(
                    "the gateway has not seen the payment succeed",
                    type="payment_not_completed",
                    non_retryable=True,
                )
            await self._apply_truth(truth)
            self._publish_now()
            assert self._state.pending_action is not None
            return self._state.pending_action

    @confirm_payment_completed.validator
    def _validate_confirmation(self, request: ConfirmPaymentRequest) -> None:
        self._check_confirmation(request)

    @workflow.update
    async def begin_payment_confirmation(self) -> PaymentConfirmation:
        """The customer opened the pending payment in the portal. Where ``billing.sca``
        lets this account skip the challenge (low value, trusted history), one on-session
        attempt comes first, and the issuer may approve it without friction; otherwise,
        or if the issuer still asks, the customer completes the intent with Stripe.js."""
        async with self._lock:
            action = self._waiting_action()
            if not action.challenge and not action.frictionless_attempted:
                action = await self._attempt_on_session(action)
            return PaymentConfirmation(
                outcome="paid" if action.status == "confirmed" else "requires_action",
                payment_intent_id=action.payment_intent_id,
                challenge=action.challenge,
                exemption=action.exemption,
                reason=action.challenge_reason,
            )

    @begin_payment_confirmation.validator
    def _validate_begin_confirmation(self) -> None:
        self._waiting_action()

    async def _attempt_on_session(self, action: PendingAction) -> PendingAction:
        state = self._state
        action = dataclasses.replace(action, frictionless_attempted=True)
        state.pending_action = action
        unpaid = next((u for u in state.unpaid_invoices if u.invoice_id == action.invoice_id), None)
        if unpaid is None or not state.payment_method_id or not state.gateway_customer_id:
            return action
        outcome = await self._charge_unpaid(unpaid, BillingActivities.charge_invoice_on_session)
        if outcome is None:
            return action
        if isinstance(outcome, ChargeSucceeded):
            await self._settle_unpaid(unpaid.invoice_id, outcome.payment_intent_id)
            assert state.pending_action is not None
            return state.pending_action
        if outcome.payment_intent_id and _authentication_demanded(outcome):
            # The issuer still asks: the customer completes this newer intent instead.
            unpaid.payment_intent_id = outcome.payment_intent_id
            action = dataclasses.replace(action, payment_intent_id=outcome.payment_intent_id)
            state.pending_action = action
        elif isinstance(outcome, ChargeDeclined):
            unpaid.decline_family = str(outcome.classification.family)
            unpaid.decline_reason = outcome.classification.reason
        state.last_event = f"on-session attempt for invoice {unpaid.invoice_id}: {outcome.kind}"
        return action

    def _waiting_action(self) -> PendingAction:
        try:
            return self._state.waiting_action()
        except ConfirmationRefused as exc:
            raise ApplicationError(exc.message, type=exc.code) from None

    def _check_confirmation(self, request: ConfirmPaymentRequest) -> PendingAction:
        try:
            return self._state.action_to_confirm(request.payment_intent_id)
        except ConfirmationRefused as exc:
            raise ApplicationError(exc.message, type=exc.code) from None

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

    def _release_held(self) -> None:
        """Upsert what a period close held back, when no continue-as-new carries it."""
        held, self._held = self._held, None
        if held:
            workflow.upsert_search_attributes(list(held.values()))

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
        state.buffered_events = state.events.buffered_count
        if state.customer is not None:
            updates.append(sa.CUSTOMER_ID.value_set(state.customer.customer_id))
        if state.plan_id is not None:
            updates.append(sa.PLAN.value_set(state.plan_id))
        if state.period_end is not None:
            updates.append(sa.PERIOD_END.value_set(state.period_end))
        # Upsert only what changed: every upsert is an event in history.
        changed = [u for u in updates if self._published.get(u.key.name) != u.value]
        if changed and self._held is not None:
            self._held.update({u.key.name: u for u in changed})
        elif changed:
            workflow.upsert_search_attributes(changed)
        self._published.update({u.key.name: u.value for u in changed})
        workflow.set_current_details(details_markdown(state, workflow.now(), next_timer))
