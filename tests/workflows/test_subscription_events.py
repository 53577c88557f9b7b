"""Gateway events as signals: signal-with-start before the subscription exists, and a
payment event that settles an unpaid renewal."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from billing.events import GatewayEvent, SubscriptionStart, stripe_event
from billing.lifecycle import SubscriptionStatus, Trigger
from billing.periods import period_end
from tests.workflows.harness import (
    FAILS_WHEN_CHARGED,
    Billing,
    eventually,
    profile,
    record_history,
)
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SetPaymentMethodRequest, SubscriptionInput


def payment_succeeded(
    subscription_id: str, invoice_id: str, at: datetime, payment_intent_id: str | None = None
) -> GatewayEvent:
    event = stripe_event(
        {
            "id": f"evt_{uuid.uuid4().hex[:14]}",
            "type": "payment_intent.succeeded",
            "created": int(at.timestamp()),
            "data": {
                "object": {
                    "id": payment_intent_id or f"pi_{uuid.uuid4().hex[:14]}",
                    "object": "payment_intent",
                    "metadata": {
                        "dunwell_subscription_id": subscription_id,
                        "dunwell_invoice_id": invoice_id,
                    },
                }
            },
        }
    )
    assert isinstance(event, GatewayEvent)
    return event


async def test_signal_with_start_waits_idle_until_activated(billing: Billing) -> None:
    subscription_id = f"sub_{uuid.uuid4().hex[:12]}"
    workflow_id = f"subscription-{subscription_id}"
    billing.started.append(workflow_id)
    early = payment_succeeded(subscription_id, "inv_unknown", await billing.soon())
    await billing.client.start_workflow(
        SubscriptionWorkflow.run,
        SubscriptionStart(subscription_id=subscription_id),
        id=workflow_id,
        task_queue=billing.task_queue,
        start_signal="gateway_event",
        start_signal_args=[early],
    )
    handle = billing.client.get_workflow_handle_for(SubscriptionWorkflow.run, workflow_id)
    idle = await eventually(handle, lambda s: s.events.applied_count == 1)
    assert (idle.activated, idle.status, idle.invoice_count) == (
        False,
        SubscriptionStatus.INCOMPLETE,
        0,
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, early)  # a duplicate delivery
    await eventually(handle, lambda s: s.events.duplicate_count == 1)

    gateway_customer, pm_id = await billing.customer()
    await handle.execute_update(
        SubscriptionWorkflow.activate,
        SubscriptionInput(
            subscription_id=subscription_id,
            customer=profile(f"cust_{uuid.uuid4().hex[:10]}"),
            gateway_customer_id=gateway_customer,
            default_payment_method_id=pm_id,
            plan_id="starter-monthly",
            currency="EUR",
            start_at=await billing.env.get_current_time(),
        ),
    )
    active = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert active.invoice_count == 1
    assert active.events.applied_count == 1, "the buffer survived activation"
    await record_history(handle, "subscription_event_start")


async def test_payment_event_settles_an_unpaid_renewal(billing: Billing) -> None:
    start = await billing.soon()
    boundary = period_end(start, start, "month")
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(days=3))
    first = await eventually(handle, lambda s: s.invoice_count == 1)
    await handle.execute_update(
        SubscriptionWorkflow.set_default_payment_method,
        SetPaymentMethodRequest(billing.card(FAILS_WHEN_CHARGED)),
    )

    await billing.sleep_until(boundary + timedelta(minutes=1))
    past_due = await eventually(handle, lambda s: s.status is SubscriptionStatus.PAST_DUE)
    (unpaid,) = past_due.unpaid_invoices
    assert unpaid.decline_family is not None and unpaid.payment_intent_id
    assert past_due.transitions[-1].cause is Trigger.RENEWAL_FAILED
    assert str(billing.store.get(unpaid.invoice_id).status) == "open"
    customer_id = first.customer.customer_id  # type: ignore[union-attr]
    receivable = billing.ledger.trial_balance()
    owed = {a.code: a.balance for a in receivable.accounts}[f"receivable:{customer_id}:EUR"]
    assert owed == unpaid.amount == 2900 + 551

    # Paid outside the workflow; the event is recorded once the gateway confirms it.
    paid = await billing.paid_intent(
        str(past_due.gateway_customer_id),
        unpaid.amount,
        {
            "dunwell_subscription_id": past_due.subscription_id,
            "dunwell_invoice_id": unpaid.invoice_id,
        },
    )
    event = payment_succeeded(past_due.subscription_id, unpaid.invoice_id, boundary, paid)
    await handle.signal(SubscriptionWorkflow.gateway_event, event)
    recovered = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert recovered.unpaid_invoices == []
    assert recovered.transitions[-1].cause is Trigger.DUNNING_RECOVERED
    assert str(billing.store.get(unpaid.invoice_id).status) == "paid"
    settled = {a.code: a.balance for a in billing.ledger.trial_balance().accounts}
    assert settled[f"receivable:{customer_id}:EUR"] == 0
