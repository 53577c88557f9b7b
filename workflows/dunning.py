"""The dunning workflow: one child per unpaid invoice (id ``dunning-<invoice_id>``).

It only executes what ``billing.dunning.decide`` returns:

    RetryAt(when)             durable timer, then TimerFired
    RetryNow                  start the charge activity, then AttemptFailed/AttemptSucceeded
    AwaitingOutcome           the charge in flight reports first
    WaitForCustomer(deadline) timer to the deadline, then TimerFired
    Paused(until)             wait (for ``until`` when set, then TimerFired)
    Stop                      apply the invoice end action, return the rest to the parent
    Recovered                 mark the invoice paid, return

Cancellation wins by construction: every message handler feeds the scheduler
synchronously (no await between acceptance and effect), and the only place a charge
starts is ``_feed`` on a ``RetryNow`` decision. Once a cancel is fed, ``decide`` never
answers ``RetryNow`` again; a charge already in flight still reports its outcome.

The parent sets the static summary at start (``Dunning <invoice_id>``); the current
details (markdown) show the phase, next retry and last decline.

Started by a subscription (``ParentClosePolicy.ABANDON``: the parent's continue-as-new
does not end it), the run signals its result to the parent's workflow id
(``dunning_finished``), which reaches whichever run of the subscription is current.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    AttemptRefused,
    AttemptSucceeded,
    AwaitingOutcome,
    CancellationUndone,
    CardRef,
    CardUpdaterEvent,
    CustomerCancelled,
    Decision,
    DunningEvent,
    DunningState,
    EndAction,
    InvoiceEndAction,
    Notification,
    NotificationKind,
    OpsEnd,
    OpsPause,
    OpsResume,
    OpsRetryNow,
    Paused,
    PaymentMethodUpdated,
    Recovered,
    RetryAt,
    RetryNow,
    Started,
    Stop,
    TimerFired,
    WaitForCustomer,
    decide,
    load_policy,
    planned_notifications,
)
from billing.dunning.state import Phase
from workflows import dunning_outage
from workflows.search_attributes import (
    DUNNING_ATTEMPT,
    LAST_DECLINE_CODE,
    NEXT_RETRY_AT,
    POLICY_VERSION,
)

with workflow.unsafe.imports_passed_through():
    from activities.dunning import (
        DunningActivities,
        DunningChargeRequest,
        DunningChargeResult,
        InvoiceEndRequest,
        MarkPaidRequest,
    )
    from activities.notifications import NotificationRequest

WORKFLOW_TYPE = "DunningWorkflow"
# The subscription workflow's signal that receives a child's DunningResult.
DUNNING_FINISHED_SIGNAL = "dunning_finished"
# Behaviour added to running workflows; each name is a workflow.patched() marker.
PATCH_REPORT_TO_PARENT = "dunning-result-to-parent"

_CHARGE_TIMEOUT = timedelta(minutes=5)
_CHARGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=6,
    non_retryable_error_types=[
        "InvalidGatewayRequest",
        "IdempotencyConflict",
        "MissingIdempotencyKey",
    ],
)
_SIDE_EFFECT_TIMEOUT = timedelta(minutes=2)
_SIDE_EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)
)


def dunning_workflow_id(invoice_id: str) -> str:
    return f"dunning-{invoice_id}"


@dataclass(frozen=True)
class DunningInput:
    invoice_id: str
    subscription_id: str
    customer_id: str
    customer_email: str
    gateway_customer_id: str
    payment_method_id: str
    card: CardRef
    amount: int  # minor units still owed on the invoice
    currency: str
    utc_offset_minutes: int
    policy_id: str
    policy_version: int  # pinned for the life of this dunning run
    first_decline: DeclineInfo | None  # the failed renewal/proration charge, if any
    started_at: datetime  # when that charge failed (or now)


@dataclass(frozen=True)
class PaymentMethodUpdate:
    payment_method_id: str
    card: CardRef


@dataclass(frozen=True)
class CardUpdaterUpdate:
    """``payment_method.automatically_updated``: the card may keep its payment method id."""

    payment_method_id: str | None = None
    card: CardRef | None = None


@dataclass(frozen=True)
class EndRequest:
    action: EndAction | None = None  # None: the policy's end action
    invoice_action: InvoiceEndAction | None = None  # None: the policy's invoice end action


@dataclass(frozen=True)
class PaidOutside:
    """The invoice was paid without a dunning charge (3-D Secure confirmed in the portal)."""

    payment_ref: str
    amount: int


@dataclass(frozen=True)
class PendingNotification:
    notification: Notification
    next_retry_at: datetime | None
    deadline: datetime | None


@dataclass(frozen=True)
class DunningView:
    """What the ``state`` query and every update return."""

    invoice_id: str
    phase: Phase
    decision: Decision
    state: DunningState
    payment_method_id: str
    next_retry_at: datetime | None
    charge_in_flight: bool
    pending_notifications: tuple[PendingNotification, ...]
    sent_notifications: tuple[str, ...]


@dataclass(frozen=True)
class DunningResult:
    outcome: Literal["recovered", "stopped"]
    reason: str
    attempts: int
    end_action: EndAction | None = None  # the parent applies it to the subscription
    invoice_end_action: InvoiceEndAction | None = None  # applied here, reported
    revoke_access_at: datetime | None = None  # the parent revokes access at this instant
    payment_ref: str | None = None
    credit_note_id: str | None = None
    duplicate_payment_ref: str | None = None  # a second successful charge to refund
    notifications_sent: tuple[str, ...] = field(default_factory=tuple)
    invoice_id: str = ""


def _refuse(message: str, kind: str) -> ApplicationError:
    return ApplicationError(message, type=kind, non_retryable=True)


@workflow.defn(name=WORKFLOW_TYPE)
class DunningWorkflow:
    @workflow.init
    def __init__(self, start: DunningInput) -> None:
        self._input = start
        self._payment_method_id = start.payment_method_id
        self._lock = asyncio.Lock()
        self._changes = 0  # bumped by every fed event: wakes the waiting main loop
        self._charge: workflow.ActivityHandle[DunningChargeResult] | None = None
        self._charge_attempt = 0
        self._charge_request: DunningChargeRequest | None = None
        self._outbox: dict[str, PendingNotification] = {}
        self._sent: list[str] = []
        self._payment_ref: str | None = None
        self._published: tuple[object, ...] | None = None
        self._spent_deadline: datetime | None = None
        self._state: DunningState
        self._decision: Decision
        started = Started(
            invoice_id=start.invoice_id,
            amount=start.amount,
            currency=start.currency,
            card=start.card,
            utc_offset_minutes=start.utc_offset_minutes,
            started_at=start.started_at,
            policy=load_policy(start.policy_id, start.policy_version),
            first_decline=start.first_decline,
        )
        # Decided here, not in run(): a message in the first activation finds a state.
        self._apply(None, started)

    @workflow.run
    async def run(self, start: DunningInput) -> DunningResult:
        while not self._state.finished:
            if self._charge is not None:
                await self._settle_charge(self._charge)
            else:
                await self._wait_for_change()
            await self._send_due_notifications()
        result = await self._finish()
        if workflow.patched(PATCH_REPORT_TO_PARENT):
            result = replace(result, invoice_id=self._input.invoice_id)
            await _report_to_parent(result)
        return result

    # --- the loop's steps ---------------------------------------------------------------

    def _feed(self, event: DunningEvent) -> None:
        self._apply(self._state, event)

    def _apply(self, state: DunningState | None, event: DunningEvent) -> None:
        now = workflow.now()
        self._state, self._decision = decide(state, event, now, workflow.random().random())
        self._changes += 1
        self._plan_notifications(now)
        if isinstance(self._decision, RetryNow) and self._charge is None:
            self._start_charge()
        self._publish()

    def _start_charge(self) -> None:
        card = self._state.in_flight_card or self._state.card
        self._charge_attempt = len(self._state.attempts) + 1
        self._charge_request = DunningChargeRequest(
            invoice_id=self._input.invoice_id,
            subscription_id=self._input.subscription_id,
            attempt=self._charge_attempt,
            gateway_customer_id=self._input.gateway_customer_id,
            payment_method_id=self._payment_method_id,
            amount=self._input.amount,
            currency=self._input.currency,
            card_fingerprint=card.fingerprint,
            card_brand=card.brand,
            decided_at=workflow.now(),
        )
        self._charge = workflow.start_activity_method(
            DunningActivities.charge,
            self._charge_request,
            start_to_close_timeout=_CHARGE_TIMEOUT,
            retry_policy=_CHARGE_RETRY,
            summary=f"charge attempt {self._charge_attempt}",
        )

    async def _settle_charge(self, charge: workflow.ActivityHandle[DunningChargeResult]) -> None:
        async with self._lock:
            # An outage is waited out, never fed to the scheduler (dunning_outage).
            result = await dunning_outage.outcome(charge, self._charge_request, _CHARGE_TIMEOUT)
            self._charge = None
            now = workflow.now()
            if result.outcome == "succeeded":
                self._payment_ref = result.payment_intent_id
                self._feed(AttemptSucceeded(at=now))
            elif result.outcome == "refused":
                # The card's attempt ledger refused it (blocked on another invoice, or
                # capped by the card's attempts on all of them): no attempt was made.
                self._feed(AttemptRefused(at=now, not_before=result.not_before))
            else:
                assert result.decline is not None
                self._feed(AttemptFailed(at=now, info=result.decline))

    async def _wait_for_change(self) -> None:
        """Sleep until the decision's deadline or a due notification, unless a message
        changes the state first; a deadline reached untouched is a TimerFired."""
        seen = self._changes
        now = workflow.now()
        due = _deadline(self._decision)
        if due is not None and due == self._spent_deadline:
            due = None  # already fired and the scheduler kept it: wait for a message
        wake = min([t for t in (due, self._next_notification_at()) if t is not None], default=None)
        if wake is None or wake > now:
            timeout = wake - now if wake is not None else None
            try:
                await workflow.wait_condition(
                    lambda: self._changes != seen, timeout=timeout, timeout_summary="dunning timer"
                )
            except TimeoutError:
                pass
        if self._changes == seen and due is not None and workflow.now() >= due:
            self._feed(TimerFired(at=workflow.now()))
            if _deadline(self._decision) == due:
                self._spent_deadline = due

    async def _send_due_notifications(self) -> None:
        async with self._lock:
            while True:
                now = workflow.now()
                due = sorted(
                    (p for p in self._outbox.values() if p.notification.send_at <= now),
                    key=lambda p: (p.notification.send_at, p.notification.key),
                )
                if not due:
                    return
                pending = due[0]
                await workflow.execute_activity_method(
                    DunningActivities.notify,
                    self._notification_request(pending),
                    start_to_close_timeout=_SIDE_EFFECT_TIMEOUT,
                    retry_policy=_SIDE_EFFECT_RETRY,
                    summary=pending.notification.key,
                )
                self._outbox.pop(pending.notification.key, None)
                self._sent.append(pending.notification.key)

    async def _finish(self) -> DunningResult:
        async with self._lock:
            result = await self._settle_invoice()
            if self._charge is not None:
                # Paid on-session while a charge was in flight: report a second payment
                # so the parent can refund it.
                late = await _outcome_of(self._charge)
                self._charge = None
                if late.outcome == "succeeded" and late.payment_intent_id != result.payment_ref:
                    result = replace(result, duplicate_payment_ref=late.payment_intent_id)
        await self._send_due_notifications()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return replace(result, notifications_sent=tuple(self._sent))

    async def _settle_invoice(self) -> DunningResult:
        state, decision = self._state, self._decision
        attempts = len(state.attempts)
        if isinstance(decision, Recovered):
            payment_ref = self._payment_ref or f"dunning:{state.invoice_id}"
            await workflow.execute_activity_method(
                DunningActivities.mark_paid,
                MarkPaidRequest(
                    invoice_id=state.invoice_id,
                    payment_ref=payment_ref,
                    amount=state.amount,
                    at=decision.at,
                ),
                start_to_close_timeout=_SIDE_EFFECT_TIMEOUT,
                retry_policy=_SIDE_EFFECT_RETRY,
            )
            return DunningResult("recovered", "paid", attempts, payment_ref=payment_ref)
        assert isinstance(decision, Stop)
        ended = await workflow.execute_activity_method(
            DunningActivities.end_invoice,
            InvoiceEndRequest(
                invoice_id=state.invoice_id,
                action=decision.invoice_end_action,
                at=workflow.now(),
                reason=f"dunning ended: {decision.reason}",
            ),
            start_to_close_timeout=_SIDE_EFFECT_TIMEOUT,
            retry_policy=_SIDE_EFFECT_RETRY,
        )
        return DunningResult(
            "stopped",
            decision.reason,
            attempts,
            end_action=decision.end_action,
            invoice_end_action=decision.invoice_end_action,
            revoke_access_at=decision.revoke_access_at,
            credit_note_id=ended.credit_note_id,
        )

    # --- notifications ------------------------------------------------------------------

    def _plan_notifications(self, now: datetime) -> None:
        """Keep what is due and unsent; replace future ones with the new decision's plan
        (a reminder for a retry that moved or vanished is dropped)."""
        decision = self._decision
        kept = {k: p for k, p in self._outbox.items() if p.notification.send_at <= now}
        next_retry = decision.when if isinstance(decision, RetryAt) else None
        deadline = _deadline(decision) if isinstance(decision, RetryAt | WaitForCustomer) else None
        for planned in planned_notifications(self._state, decision, now):
            if planned.key not in self._sent and planned.key not in kept:
                kept[planned.key] = PendingNotification(planned, next_retry, deadline)
        if self._state.cancelled_at is not None:
            # The customer cancelled: no more requests to pay, only a receipt if an
            # in-flight charge went through.
            kept = {
                k: p for k, p in kept.items() if p.notification.kind is NotificationKind.RECOVERED
            }
        self._outbox = kept

    def _next_notification_at(self) -> datetime | None:
        return min((p.notification.send_at for p in self._outbox.values()), default=None)

    def _notification_request(self, pending: PendingNotification) -> NotificationRequest:
        start, n = self._input, pending.notification
        return NotificationRequest(
            key=n.key,
            kind=n.kind,
            customer_id=start.customer_id,
            recipient=start.customer_email,
            invoice_id=start.invoice_id,
            subscription_id=start.subscription_id,
            amount=start.amount,
            currency=start.currency,
            message=n.message,
            next_retry_at=pending.next_retry_at,
            deadline=pending.deadline,
        )

    # --- visibility ---------------------------------------------------------------------

    def _publish(self) -> None:
        state = self._state
        next_retry = self._decision.when if isinstance(self._decision, RetryAt) else None
        last_code = state.last_reason
        published = (len(state.attempts), next_retry, last_code, state.policy_key, state.phase)
        if published == self._published:
            return
        previous, self._published = self._published, published
        updates: list[SearchAttributeUpdate[Any]] = [
            DUNNING_ATTEMPT.value_set(len(state.attempts)),
            POLICY_VERSION.value_set(state.policy_key),
        ]
        if next_retry is not None:
            updates.append(NEXT_RETRY_AT.value_set(next_retry))
        elif previous is not None and previous[1] is not None:
            updates.append(NEXT_RETRY_AT.value_unset())  # only once set: nothing to clear
        if last_code is not None:
            updates.append(LAST_DECLINE_CODE.value_set(last_code))
        workflow.upsert_search_attributes(updates)
        workflow.set_current_details(
            "\n".join(
                [
                    f"**Dunning** invoice `{state.invoice_id}` — {state.phase.value}",
                    f"- attempts: {len(state.attempts)} (policy {state.policy_key})",
                    f"- next retry: {next_retry.isoformat() if next_retry else '—'}",
                    f"- last decline: {last_code or '—'}",
                ]
            )
        )

    def _view(self) -> DunningView:
        next_retry = self._decision.when if isinstance(self._decision, RetryAt) else None
        return DunningView(
            invoice_id=self._state.invoice_id,
            phase=self._state.phase,
            decision=self._decision,
            state=self._state,
            payment_method_id=self._payment_method_id,
            next_retry_at=next_retry,
            charge_in_flight=self._charge is not None,
            pending_notifications=tuple(self._outbox.values()),
            sent_notifications=tuple(self._sent),
        )

    @workflow.query
    def state(self) -> DunningView:
        return self._view()

    # --- messages: customer and gateway (updates for clients, signals for the parent) ---

    @workflow.update
    def customer_cancelled(self) -> DunningView:
        """The customer cancelled: no charge starts after this update is accepted."""
        self._cancel()
        return self._view()

    @customer_cancelled.validator
    def _validate_cancel(self) -> None:
        self._refuse_if_finished()

    @workflow.signal
    def notify_customer_cancelled(self) -> None:
        """The parent's form of ``customer_cancelled`` (a workflow cannot send updates)."""
        if not self._state.finished:
            self._cancel()

    def _cancel(self) -> None:
        self._feed(CustomerCancelled(at=workflow.now()))

    @workflow.signal
    def notify_cancellation_undone(self) -> None:
        """The customer undid the cancellation before dunning stopped for it: the
        schedule resumes with the attempts so far (the parent sends this; a run that has
        already stopped ignores it)."""
        if not self._state.finished:
            self._feed(CancellationUndone(at=workflow.now()))

    @workflow.update
    def payment_method_updated(self, update: PaymentMethodUpdate) -> DunningView:
        """A new default payment method: one immediate retry with it."""
        self._new_payment_method(update)
        return self._view()

    @payment_method_updated.validator
    def _validate_payment_method(self, update: PaymentMethodUpdate) -> None:
        self._refuse_if_finished()
        _check_payment_method(update.payment_method_id)

    @workflow.signal
    def notify_payment_method_updated(self, update: PaymentMethodUpdate) -> None:
        if not self._state.finished and update.payment_method_id.startswith("pm_"):
            self._new_payment_method(update)

    def _new_payment_method(self, update: PaymentMethodUpdate) -> None:
        # Only the next charge uses it: one in flight keeps the method it started with.
        self._payment_method_id = update.payment_method_id
        self._feed(PaymentMethodUpdated(card=update.card, at=workflow.now()))

    @workflow.update
    def card_updater_event(self, update: CardUpdaterUpdate) -> DunningView:
        """The network account updater refreshed the card: one immediate retry."""
        self._card_updated(update)
        return self._view()

    @card_updater_event.validator
    def _validate_card_updater(self, update: CardUpdaterUpdate) -> None:
        self._refuse_if_finished()
        if update.payment_method_id is not None:
            _check_payment_method(update.payment_method_id)

    @workflow.signal
    def notify_card_updater_event(self, update: CardUpdaterUpdate) -> None:
        if not self._state.finished:
            self._card_updated(update)

    def _card_updated(self, update: CardUpdaterUpdate) -> None:
        if update.payment_method_id is not None:
            self._payment_method_id = update.payment_method_id
        self._feed(CardUpdaterEvent(at=workflow.now(), card=update.card))

    @workflow.update
    def invoice_paid(self, paid: PaidOutside) -> DunningView:
        """The customer paid on-session (3-D Secure in the portal): dunning recovers."""
        self._paid_outside(paid)
        return self._view()

    @invoice_paid.validator
    def _validate_paid(self, paid: PaidOutside) -> None:
        self._refuse_if_finished()
        if paid.amount <= 0 or not paid.payment_ref:
            raise _refuse("a payment needs a reference and a positive amount", "invalid_payment")

    @workflow.signal
    def notify_invoice_paid(self, paid: PaidOutside) -> None:
        if not self._state.finished:
            self._paid_outside(paid)

    def _paid_outside(self, paid: PaidOutside) -> None:
        self._payment_ref = paid.payment_ref
        self._feed(AttemptSucceeded(at=workflow.now()))

    # --- messages: ops --------------------------------------------------------------------

    @workflow.update
    def pause(self) -> DunningView:
        """Ops: no retry until resumed (a charge in flight still reports)."""
        self._feed(OpsPause(at=workflow.now()))
        return self._view()

    @pause.validator
    def _validate_pause(self) -> None:
        self._refuse_if_finished()
        self._refuse_if_cancelled()
        if self._state.paused_by_ops:
            raise _refuse("dunning is already paused", "already_paused")

    @workflow.update
    def resume(self) -> DunningView:
        """Ops: resume the schedule from now."""
        self._feed(OpsResume(at=workflow.now()))
        return self._view()

    @resume.validator
    def _validate_resume(self) -> None:
        self._refuse_if_finished()
        self._refuse_if_cancelled()
        if not self._state.paused_by_ops:
            raise _refuse("dunning is not paused", "not_paused")

    @workflow.update
    def retry_now(self) -> DunningView:
        """Ops: one immediate retry (as soon as the network rules allow)."""
        self._feed(OpsRetryNow(at=workflow.now()))
        return self._view()

    @retry_now.validator
    def _validate_retry_now(self) -> None:
        self._refuse_if_finished()
        self._refuse_if_cancelled()
        if self._charge is not None:
            raise _refuse("a charge is in flight", "charge_in_flight")
        if self._state.paused_by_ops:
            raise _refuse("dunning is paused; resume it first", "paused")
        now = workflow.now()
        # A dry run of the scheduler: pure, and a fixed rand leaves workflow.random()
        # untouched (a rejected update leaves no trace in history).
        _, decision = decide(self._state, OpsRetryNow(at=now), now, 0.0)
        retries = isinstance(decision, RetryNow) or (
            isinstance(decision, RetryAt) and decision.reason == "ops_retry"
        )
        if not retries:
            raise _refuse(
                "no retry is possible now (blocked card, window over, or retries used up)",
                "retry_not_allowed",
            )

    @workflow.update
    def end(self, request: EndRequest) -> DunningView:
        """Ops: end dunning now with an end action (default: the policy's)."""
        self._feed(
            OpsEnd(at=workflow.now(), action=request.action, invoice_action=request.invoice_action)
        )
        return self._view()

    @end.validator
    def _validate_end(self, request: EndRequest) -> None:
        self._refuse_if_finished()
        if self._charge is not None:
            raise _refuse("a charge is in flight; end after its outcome", "charge_in_flight")

    def _refuse_if_finished(self) -> None:
        if self._state.finished:
            raise _refuse(f"dunning is over ({self._state.phase.value})", "dunning_finished")

    def _refuse_if_cancelled(self) -> None:
        if self._state.cancelled_at is not None:
            raise _refuse("the customer cancelled; dunning is ending", "customer_cancelled")


async def _report_to_parent(result: DunningResult) -> None:
    parent = workflow.info().parent
    if parent is None:
        return  # started by ops or a test: the result is the workflow's return value
    handle = workflow.get_external_workflow_handle(parent.workflow_id)
    try:
        await handle.signal(DUNNING_FINISHED_SIGNAL, result)
    except FailureError:
        # The subscription has ended (e.g. canceled at its period end): nothing to update.
        workflow.logger.info("subscription %s has ended; result not delivered", parent.workflow_id)


def _check_payment_method(payment_method_id: str) -> None:
    if not payment_method_id.startswith("pm_"):
        raise _refuse("a payment method must be a gateway token (pm_…)", "invalid_payment_method")


async def _outcome_of(charge: workflow.ActivityHandle[DunningChargeResult]) -> DunningChargeResult:
    return await dunning_outage.outcome(charge, None, _CHARGE_TIMEOUT)


def _deadline(decision: Decision) -> datetime | None:
    match decision:
        case RetryAt(when=when):
            return when
        case WaitForCustomer(deadline=deadline):
            return deadline
        case Paused(until=until):
            return until
        case AwaitingOutcome() | RetryNow() | Stop() | Recovered():
            return None
    return None  # pragma: no cover
