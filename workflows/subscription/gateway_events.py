"""Gateway events: ordered, applied once, and re-synced from the gateway on a gap.

Events arrive as the ``gateway_event`` signal and are ordered by
``billing.events.EventBuffer`` before the first await, so they keep their arrival order.
A relay sequence gap open longer than the policy's timeout is settled by a re-sync: the
gateway's current object state is the truth, whatever the events said. A payment event
for an unpaid invoice is verified at the gateway before it is recorded
(``gateway_reconciler.verify``): a mismatch records nothing and opens a reconciliation
exception.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.subscription import card, payments
from workflows.subscription.generations import PATCH_CARD_UPDATER, PATCH_VERIFY_PAYMENTS
from workflows.subscription.run import GATEWAY_READ_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.gateway_reconciler import (
        GatewayReconciler,
        VerifyPaymentRequest,
        VerifyPaymentResult,
    )
    from activities.gateway_sync import GatewaySyncActivities, ResyncRequest, ResyncResult
    from billing.events import Gap, GatewayEvent
    from billing.payment_verification import ExpectedPayment
    from workflows.subscription.state import PaymentMethodInfo, ResyncRecord, UnpaidInvoice

# The events that say an invoice was paid; the invoice id is in our metadata.
_PAID_EVENTS = ("invoice.paid", "payment_intent.succeeded")


async def receive(run: Run, event: GatewayEvent) -> None:
    """The ``gateway_event`` signal: order the event, then apply what is ready."""
    state = run.state
    # Ordering happens before the first await, so events keep their arrival order.
    ready = state.events.offer(event, workflow.now())
    state.last_event = f"gateway event {event.type} ({event.event_id})"
    if not ready:
        run.publish_now()
        return
    async with run.lock:
        for applied in ready:
            await _apply(run, applied)
        run.publish_now()


def paid_invoice_id(event: GatewayEvent) -> object:
    """The invoice a payment event names in our metadata (None when it names none)."""
    metadata = event.payload.get("metadata") or {}
    return metadata.get("dunwell_invoice_id") if isinstance(metadata, dict) else None


async def _apply(run: Run, event: GatewayEvent) -> None:
    if event.type == "payment_method.automatically_updated":
        if run.patched(PATCH_CARD_UPDATER):
            await card.apply_updater_event(run, event)
        return
    if event.type not in _PAID_EVENTS:
        return
    invoice_id = paid_invoice_id(event)
    unpaid = next((u for u in run.state.unpaid_invoices if u.invoice_id == invoice_id), None)
    if unpaid is None or not workflow.patched(PATCH_VERIFY_PAYMENTS):
        await payments.settle_unpaid(run, invoice_id, event.object_id)
        return
    # Verify before believing: the gateway's own record of the payment decides.
    payment_intent_id = payment_intent_of(event)
    verified = await verify(run, event, payment_intent_id, unpaid)
    if not verified.matched:
        run.state.last_event = (
            f"payment {payment_intent_id} for invoice {unpaid.invoice_id} not recorded: "
            f"the gateway disagrees ({', '.join(verified.mismatches)})"
        )
        return
    await payments.settle_unpaid(run, unpaid.invoice_id, payment_intent_id)


def payment_intent_of(event: GatewayEvent) -> str:
    """The PaymentIntent a payment event is about: the event's object, or the one an
    invoice names (its id as the ref when it names none, which the gateway will not
    know as an intent)."""
    if event.object_type == "payment_intent":
        return event.object_id
    named = event.payload.get("payment_intent")
    if isinstance(named, dict):
        named = named.get("id")
    return named if isinstance(named, str) and named else event.object_id


async def verify(
    run: Run, event: GatewayEvent, payment_intent_id: str, unpaid: UnpaidInvoice
) -> VerifyPaymentResult:
    """``gateway_reconciler.verify``: the intent read back from the gateway against the
    invoice; a mismatch opens a reconciliation exception there."""
    state = run.state
    return await workflow.execute_activity_method(
        GatewayReconciler.verify,
        VerifyPaymentRequest(
            payment_intent_id=payment_intent_id,
            expected=ExpectedPayment(
                invoice_id=unpaid.invoice_id,
                subscription_id=state.subscription_id,
                amount=unpaid.amount,
                currency=unpaid.currency,
                gateway_customer_id=state.gateway_customer_id,
            ),
            at=workflow.now(),
            event_id=event.event_id,
            event_type=event.type,
        ),
        retry_policy=RETRY,
        start_to_close_timeout=GATEWAY_READ_TIMEOUT,
    )


async def watch_gaps(run: Run) -> None:
    """A relay sequence gap open longer than the policy's timeout is settled by a
    re-sync from the gateway (its current object state is the truth)."""
    state = run.state
    while True:
        await workflow.wait_condition(lambda: state.events.buffered_count > 0)
        timeout = state.gateway_policy.gap_timeout
        now = workflow.now()
        due = state.events.gaps(now, timeout)
        if due:
            async with run.lock:
                await _resync(run, due[-1])
            continue
        holes = state.events.gaps(now, timedelta(0))
        if not holes:
            continue  # cannot happen: buffered relay events always sit behind a hole
        wait = min(g.waiting_since for g in holes) + timeout - now
        count = state.events.buffered_count

        def drained(seen: int = count) -> bool:
            return state.events.buffered_count < seen

        try:
            await workflow.wait_condition(drained, timeout=max(wait, timedelta(seconds=1)))
        except TimeoutError:
            pass


async def _resync(run: Run, gap: Gap) -> None:
    state = run.state
    waiting_intents = [
        p.event.object_id for p in state.events.pending if p.event.object_type == "payment_intent"
    ]
    owed_intents = [u.payment_intent_id for u in state.unpaid_invoices if u.payment_intent_id]
    truth = await read_gateway(run, [*owed_intents, *waiting_intents], state.payment_method_id)
    settled = await apply_truth(run, truth)
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
        await _apply(run, event)
    run.publish_now()


async def read_gateway(
    run: Run, payment_intent_ids: list[str], payment_method_id: str | None
) -> ResyncResult:
    """The gateway's current record of these payment intents and the card on file."""
    return await workflow.execute_activity_method(
        GatewaySyncActivities.resync,
        ResyncRequest(
            subscription_id=run.state.subscription_id,
            payment_intent_ids=payment_intent_ids,
            payment_method_id=payment_method_id,
        ),
        retry_policy=RETRY,
        start_to_close_timeout=GATEWAY_READ_TIMEOUT,
    )


async def apply_truth(run: Run, truth: ResyncResult) -> list[str]:
    """Settle what the gateway says succeeded; refresh the card on file."""
    state = run.state
    settled: list[str] = []
    for intent in truth.intents:
        if intent.status == "succeeded" and await payments.settle_unpaid(
            run, intent.invoice_id, intent.id
        ):
            settled.append(str(intent.invoice_id))
    on_file = truth.payment_method
    if on_file is not None and on_file.id == state.payment_method_id:
        state.payment_method = PaymentMethodInfo.of(on_file)
    return settled
