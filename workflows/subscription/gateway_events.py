"""Gateway events: ordered, applied once, and re-synced from the gateway on a gap.

Events arrive as the ``gateway_event`` signal and are ordered by
``billing.events.EventBuffer`` before the first await, so they keep their arrival order.
A relay sequence gap open longer than the policy's timeout is settled by a re-sync: the
gateway's current object state is the truth, whatever the events said.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

from workflows.subscription import card, payments
from workflows.subscription.generations import PATCH_CARD_UPDATER
from workflows.subscription.run import GATEWAY_READ_TIMEOUT, RETRY, Run

with workflow.unsafe.imports_passed_through():
    from activities.gateway_sync import GatewaySyncActivities, ResyncRequest, ResyncResult
    from billing.events import Gap, GatewayEvent
    from workflows.subscription.state import PaymentMethodInfo, ResyncRecord

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
    await payments.settle_unpaid(run, paid_invoice_id(event), event.object_id)


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
