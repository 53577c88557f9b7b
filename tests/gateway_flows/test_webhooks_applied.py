"""Signed gateway events through the running API into the subscription workflow, applied
exactly once: localstripe's own webhooks, and an event acknowledged while no worker was
polling whose processing was then cut short by a worker crash."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import string
import time
from typing import Any

import httpx
from sqlalchemy import select
from temporalio import activity

from activities.billing import InvoiceSummary, MarkPaidRequest
from billing.lifecycle import SubscriptionStatus
from stores.tables import processed_events
from tests.gateway_flows.conftest import WEBHOOK_SECRET, Flows
from tests.support.localstripe import register_webhook
from tests.workflows.harness import FAILS_WHEN_CHARGED, VISA_OK, eventually
from workflows.subscription import SubscriptionWorkflow

BASE62 = string.ascii_letters + string.digits


def base62_id(prefix: str) -> str:
    # Not hex: a hex uuid holds a Luhn-valid 13-digit run now and then, which the
    # card-data guard rightly refuses.
    return f"{prefix}_{''.join(secrets.choice(BASE62) for _ in range(24))}"


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    t = int(time.time())
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


async def post_signed(flows: Flows, body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(base_url=flows.base_url, timeout=10) as http:
        return await http.post(
            "/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": signature(body), "Content-Type": "application/json"},
        )


def delivered_rows(flows: Flows, subscription_id: str) -> list[dict[str, Any]]:
    with flows.engine.connect() as conn:
        rows = conn.execute(
            select(processed_events).where(processed_events.c.subscription_id == subscription_id)
        )
        return [dict(row._mapping) for row in rows]


async def rows_eventually(
    flows: Flows, subscription_id: str, event_type: str, timeout: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [
            r
            for r in delivered_rows(flows, subscription_id)
            if r["event_type"] == event_type and r["status"] == "delivered"
        ]
        if found:
            (row,) = found
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"no delivered {event_type} for {subscription_id}")
        await asyncio.sleep(0.1)


async def test_localstripe_webhooks_are_applied_exactly_once(flows: Flows) -> None:
    register_webhook(
        flows.localstripe, "dunwell-flows", f"{flows.base_url}/webhooks/stripe", WEBHOOK_SECRET
    )
    async with flows.worker():
        handle = await flows.subscribe(VISA_OK)
        sid = handle.id.removeprefix("subscription-")
        await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
        row = await rows_eventually(flows, sid, "payment_intent.succeeded")
        event_id = row["event_id"]
        applied = await eventually(handle, lambda s: event_id in s.events.applied_ids)
        assert applied.events.applied_ids.count(event_id) == 1
        body = json.loads(row["raw_body"])
        intent = body["data"]["object"]
        assert intent["metadata"]["dunwell_subscription_id"] == sid
        assert intent["status"] == "succeeded"

        # The gateway delivers again (a retry): acknowledged as a duplicate, not re-applied.
        again = await post_signed(flows, row["raw_body"].encode())
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        # ... and even a second signal of the same event is dropped by the workflow.
        replayed = await eventually(handle, lambda s: event_id in s.events.applied_ids)
        await handle.signal(
            SubscriptionWorkflow.gateway_event, replayed_event(flows, row["raw_body"])
        )
        after = await eventually(
            handle,
            lambda s: s.events.duplicate_count == replayed.events.duplicate_count + 1,
        )
        assert after.events.applied_ids.count(event_id) == 1
        assert after.events.applied_count == replayed.events.applied_count
        await handle.terminate("test finished")


def replayed_event(flows: Flows, raw_body: str) -> Any:
    from billing.events import stripe_event

    return stripe_event(json.loads(raw_body))


async def test_event_survives_a_worker_killed_between_ack_and_processing(flows: Flows) -> None:
    async with flows.worker():
        handle = await flows.subscribe(FAILS_WHEN_CHARGED)
        owing = await eventually(handle, lambda s: len(s.unpaid_invoices) == 1)
    (unpaid,) = owing.unpaid_invoices
    assert owing.status is SubscriptionStatus.INCOMPLETE and unpaid.payment_intent_id
    # The customer pays the invoice with another card: the gateway's record, which the
    # workflow verifies before it records the event, says that intent succeeded.
    other_card = flows.card(VISA_OK)
    flows.stripe.v1.payment_methods.attach(
        other_card, params={"customer": str(owing.gateway_customer_id)}
    )
    paid_intent = flows.stripe.v1.payment_intents.create(
        params={
            "amount": unpaid.amount,
            "currency": unpaid.currency.lower(),
            "customer": str(owing.gateway_customer_id),
            "payment_method": other_card,
            "payment_method_types": ["card"],
            "confirm": True,
            "metadata": {
                "dunwell_subscription_id": owing.subscription_id,
                "dunwell_invoice_id": unpaid.invoice_id,
            },
        }
    )
    assert paid_intent.status == "succeeded"

    # No worker polls the task queue now: the API still acknowledges at once.
    event_id = base62_id("evt")
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": paid_intent.id,
                "object": "payment_intent",
                "status": "succeeded",
                "metadata": {
                    "dunwell_subscription_id": owing.subscription_id,
                    "dunwell_invoice_id": unpaid.invoice_id,
                },
            }
        },
    }
    started = time.monotonic()
    ack = await post_signed(flows, json.dumps(event).encode())
    assert ack.status_code == 200 and ack.json()["status"] == "accepted"
    assert time.monotonic() - started < 5

    # A worker picks it up and dies while recording the payment.
    recording = asyncio.Event()

    @activity.defn(name="billing.mark_invoice_paid")
    async def stuck(request: MarkPaidRequest) -> InvoiceSummary:
        recording.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    doomed = flows.worker(replacing=[stuck])
    run = asyncio.create_task(doomed.run())
    await asyncio.wait_for(recording.wait(), timeout=20)
    await doomed.shutdown()
    await run
    assert str(flows.store.get(unpaid.invoice_id).status) == "open", "nothing applied yet"

    async with flows.worker():
        paid = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE, timeout=60)
    assert paid.unpaid_invoices == [] and paid.events.applied_ids.count(event_id) == 1
    assert str(flows.store.get(unpaid.invoice_id).status) == "paid"
    assert paid.customer is not None
    balances = {a.code: a.balance for a in flows.ledger.trial_balance().accounts}
    assert balances[f"receivable:{paid.customer.customer_id}:EUR"] == 0, "paid once, not twice"
    await handle.terminate("test finished")
