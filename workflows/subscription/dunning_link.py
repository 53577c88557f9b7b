"""The link to dunning: a ``DunningWorkflow`` child per unpaid invoice, and its result.

An unpaid renewal is handed to a child (``dunning-<invoice id>``) started with
``ParentClosePolicy.ABANDON``, so a subscription that ends first (canceled at its period
end) does not cut short the invoice's end action. The run's continue-as-new waits while a
child it started is still running (a dunning run is bounded by its policy window, at most
weeks), so the child's completion reaches a live run.

The child signals its result back (``dunning_finished``); the result is kept in state
until applied: a recovery at once, a stop's end action exactly at its
``revoke_access_at`` (a durable timer in ``watch``). Customer cancellation, a new default
card, card-updater events and payments made elsewhere are forwarded to the children as
signals (``tell``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError

from workflows.subscription import outbound
from workflows.subscription.generations import PATCH_DUNNING_CHILD, PATCH_DUNNING_POLICY_V3
from workflows.subscription.run import DB_TIMEOUT, GATEWAY_READ_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.dunning import DunningActivities, UtcOffsetRequest
    from activities.gateway_sync import GatewaySyncActivities
    from billing.dunning import CardRef, EndAction, policy_for
    from billing.gateway import PaymentMethodDetails
    from billing.lifecycle import SubscriptionStatus, Trigger
    from workflows.dunning import DunningInput, DunningResult, DunningWorkflow, dunning_workflow_id
    from workflows.subscription.state import (
        DunningOutcome,
        PaymentMethodInfo,
        SubscriptionState,
        UnpaidInvoice,
    )

_CARD_READ_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["InvalidGatewayRequest"],
)


async def hand_to_dunning(run: Run, unpaid: UnpaidInvoice) -> None:
    """Start the invoice's dunning child (runs recorded before the patch leave the
    invoice waiting in ``unpaid_invoices``)."""
    state = run.state
    if not run.patched(PATCH_DUNNING_CHILD) or unpaid.dunning_workflow_id:
        return
    if state.customer is None or state.plan_id is None or not state.gateway_customer_id:
        return
    if not state.payment_method_id:
        state.last_event = f"invoice {unpaid.invoice_id} waits for a payment method"
        return
    # Runs that handed invoices to dunning before the v3 policies keep assigning the
    # policies they knew (a marker per hand-over, so their histories replay as recorded).
    assignments = 2 if workflow.patched(PATCH_DUNNING_POLICY_V3) else 1
    policy = policy_for(state.plan_id, state.customer.segment, assignments)
    card = await card_ref(run, state.payment_method_id)
    offset = await workflow.execute_activity_method(
        DunningActivities.utc_offset_minutes,
        UtcOffsetRequest(timezone=state.customer.timezone, at=workflow.now()),
        retry_policy=RETRY,
        start_to_close_timeout=DB_TIMEOUT,
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
    run.live_children.add(child_id)
    run.watch(_await_child(run, child_id, child))
    grace = unpaid.recorded_at + policy.grace_period
    state.grace_until = max(state.grace_until or grace, grace)
    state.last_event = f"invoice {unpaid.invoice_id} handed to dunning ({policy.key})"
    outbound.dunning_event(run, "dunning.started", unpaid.invoice_id, policy=policy.key)
    run.publish_now()


async def _await_child(
    run: Run, child_id: str, child: workflow.ChildWorkflowHandle[Any, DunningResult]
) -> None:
    """The result itself arrives as the ``dunning_finished`` signal (sent before the
    child completes); this only tracks that the child has closed."""
    try:
        await child
    except FailureError as exc:  # failed, terminated or timed out: nothing will report
        run.state.last_event = f"dunning {child_id} ended without a result: {exc}"
    run.live_children.discard(child_id)
    run.wake = True


async def card_ref(run: Run, payment_method_id: str) -> CardRef:
    """What network caps count against: the card's fingerprint and brand, read from
    the gateway when the state does not have them."""
    state = run.state
    card = state.payment_method
    if card is None or card.id != payment_method_id or not card.fingerprint:
        try:
            details: PaymentMethodDetails = await workflow.execute_activity_method(
                GatewaySyncActivities.describe_payment_method,
                payment_method_id,
                retry_policy=_CARD_READ_RETRY,
                start_to_close_timeout=GATEWAY_READ_TIMEOUT,
            )
        except ActivityError:
            return CardRef(payment_method_id, card.brand if card and card.brand else "unknown")
        card = PaymentMethodInfo.of(details)
        if payment_method_id == state.payment_method_id:
            state.payment_method = card
    return CardRef(card.fingerprint or card.id, card.brand or "unknown")


def card_on_file(state: SubscriptionState) -> CardRef | None:
    """The card on file as network caps know it, from what the state holds."""
    card = state.payment_method
    if card is None:
        return None
    return CardRef(card.fingerprint or card.id, card.brand or "unknown")


def children(state: SubscriptionState) -> list[str]:
    """The dunning runs of this subscription's unpaid invoices."""
    return [u.dunning_workflow_id for u in state.unpaid_invoices if u.dunning_workflow_id]


async def tell(run: Run, child_id: str, signal: str, arg: object = None) -> None:
    handle = workflow.get_external_workflow_handle(child_id)
    try:
        if arg is None:
            await handle.signal(signal)
        else:
            await handle.signal(signal, arg)
    except FailureError:
        # The child has finished; its result signal is on its way or applied.
        run.state.last_event = f"{child_id} has finished; {signal} not delivered"


def outcome_of(result: DunningResult, received_at: datetime) -> DunningOutcome:
    """A child's result as the state keeps it until it is applied."""
    end_action = result.end_action.value if result.end_action is not None else None
    return DunningOutcome(
        invoice_id=result.invoice_id,
        outcome=result.outcome,
        reason=result.reason,
        attempts=result.attempts,
        received_at=received_at,
        end_action=end_action,
        revoke_access_at=result.revoke_access_at,
        payment_ref=result.payment_ref,
        duplicate_payment_ref=result.duplicate_payment_ref,
    )


def receive(state: SubscriptionState, result: DunningResult, at: datetime) -> None:
    """The ``dunning_finished`` signal: keep the result for ``watch`` to apply."""
    state.dunning_outcomes.append(outcome_of(result, at))
    state.last_event = f"dunning for {result.invoice_id}: {result.outcome} ({result.reason})"


async def watch(run: Run) -> None:
    """Apply dunning results: recoveries at once, stops at their revoke instant."""
    state = run.state
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
        async with run.lock:
            for outcome in due:
                state.dunning_outcomes.remove(outcome)
                _apply_outcome(run, outcome)
            run.wake = True  # the main loop re-checks for a terminal status
            run.publish_now()


def _apply_outcome(run: Run, outcome: DunningOutcome) -> None:
    state = run.state
    unpaid = next((u for u in state.unpaid_invoices if u.invoice_id == outcome.invoice_id), None)
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
                run.apply(Trigger.DUNNING_RECOVERED, workflow.now())
        return
    unpaid.dunning_workflow_id = None  # the invoice stays owed; a payment still settles it
    # The child stops at its revoke instant and reports a moment later: the record
    # carries the instant policy set (access was already off by grace_until).
    at = outcome.revoke_access_at or outcome.received_at
    state.grace_until = at
    if outcome.reason == "customer_cancelled" and not state.cancel_at_period_end:
        # The undo reached dunning only after it had stopped for the cancellation (a run
        # paused for it resumes instead): the invoice stays owed, for ops to see.
        state.last_event = f"dunning for {unpaid.invoice_id} ended by an undone cancellation"
        return
    if state.status is not SubscriptionStatus.PAST_DUE:
        return
    if outcome.end_action == EndAction.CANCEL.value:
        state.unpaid_invoices.remove(unpaid)
        run.apply(Trigger.DUNNING_EXHAUSTED_CANCEL, at)
    elif outcome.end_action == EndAction.MARK_UNPAID.value:
        run.apply(Trigger.DUNNING_EXHAUSTED_UNPAID, at)
