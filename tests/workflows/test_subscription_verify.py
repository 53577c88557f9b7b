"""Verify before believing: a payment event for an unpaid invoice is recorded only when
the gateway's own record of the PaymentIntent matches the invoice.

Forged ``payment_intent.succeeded`` events name real intents at localstripe that do not
pay the invoice: a lower amount, another customer, one that has not succeeded. Each
leaves the invoice unpaid and opens a reconciliation exception; the genuine payment
that follows is recorded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from billing.reconciliation.model import ExceptionClass
from ledger.reconciliation.exceptions import ExceptionStatus, ExceptionStore, ExceptionView
from tests.workflows.harness import FAILS_WHEN_CHARGED, VISA_OK, Billing, eventually
from tests.workflows.test_subscription_gateway import renewal_needing, stripe_shaped
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SubscriptionState, UnpaidInvoice


def exception_for(engine: Engine, payment_intent_id: str) -> ExceptionView | None:
    found = [
        x for x in ExceptionStore(engine).list(limit=500) if x.gateway_ref == payment_intent_id
    ]
    assert len(found) <= 1
    return found[0] if found else None


async def working_card(billing: Billing, customer_id: str) -> str:
    card = billing.card(VISA_OK)
    await billing.gateway.attach_payment_method(
        payment_method_id=card, customer_id=customer_id, idempotency_key=f"{card}:attach"
    )
    return card


def intent(
    billing: Billing,
    *,
    customer_id: str,
    card: str,
    amount: int,
    metadata: dict[str, str],
    confirm: bool = True,
) -> str:
    created = billing.stripe.v1.payment_intents.create(
        params={
            "amount": amount,
            "currency": "eur",
            "customer": customer_id,
            "payment_method": card,
            "payment_method_types": ["card"],
            "confirm": confirm,
            "metadata": metadata,
        }
    )
    expected = "succeeded" if confirm else "requires_confirmation"
    assert created.status == expected, created.status
    return str(created.id)


def claimed_paid(
    state: SubscriptionState, unpaid: UnpaidInvoice, payment_intent_id: str
) -> dict[str, Any]:
    """What a forged event says: the intent paid the invoice in full, on this customer."""
    return {
        "id": payment_intent_id,
        "object": "payment_intent",
        "status": "succeeded",
        "amount": unpaid.amount,
        "currency": unpaid.currency.lower(),
        "customer": state.gateway_customer_id,
        "metadata": {
            "dunwell_subscription_id": state.subscription_id,
            "dunwell_invoice_id": unpaid.invoice_id,
        },
    }


@pytest.mark.parametrize(
    ("forgery", "cls", "mismatches"),
    [
        ("lower_amount", ExceptionClass.AMOUNT, ["amount"]),
        ("another_customer", ExceptionClass.ATTRIBUTION, ["customer"]),
        ("not_succeeded", ExceptionClass.STATUS, ["status"]),
        ("unknown_intent", ExceptionClass.MISSING_AT_GATEWAY, ["missing"]),
    ],
)
async def test_forged_payment_event_records_nothing_and_opens_an_exception(
    billing: Billing,
    billing_engine: Engine,
    forgery: str,
    cls: ExceptionClass,
    mismatches: list[str],
) -> None:
    handle, past_due, _boundary = await renewal_needing(billing, FAILS_WHEN_CHARGED)
    (unpaid,) = past_due.unpaid_invoices
    customer_id = str(past_due.gateway_customer_id)
    ours = {
        "dunwell_subscription_id": past_due.subscription_id,
        "dunwell_invoice_id": unpaid.invoice_id,
    }
    if forgery == "lower_amount":
        card = await working_card(billing, customer_id)
        pi = intent(
            billing, customer_id=customer_id, card=card, amount=unpaid.amount - 1, metadata=ours
        )
    elif forgery == "another_customer":
        someone, their_card = await billing.customer(VISA_OK)
        pi = intent(
            billing, customer_id=someone, card=their_card, amount=unpaid.amount, metadata=ours
        )
    elif forgery == "not_succeeded":
        card = await working_card(billing, customer_id)
        pi = intent(
            billing,
            customer_id=customer_id,
            card=card,
            amount=unpaid.amount,
            metadata=ours,
            confirm=False,
        )
    else:
        pi = "pi_NeverCreatedAnywhere1"
    now = await billing.env.get_current_time()
    forged = stripe_shaped("payment_intent.succeeded", claimed_paid(past_due, unpaid, pi), now)
    await handle.signal(SubscriptionWorkflow.gateway_event, forged)

    state = await eventually(handle, lambda s: pi in (s.last_event or ""))
    assert "not recorded" in (state.last_event or "")
    assert [u.invoice_id for u in state.unpaid_invoices] == [unpaid.invoice_id]
    assert str(billing.store.get(unpaid.invoice_id).status) == "open"
    assert state.amount_paid == past_due.amount_paid, "no payment recorded"
    opened = exception_for(billing_engine, pi)
    assert opened is not None
    assert (opened.cls, opened.status) == (cls, ExceptionStatus.OPEN)
    assert opened.evidence["mismatches"] == mismatches
    assert opened.evidence["event"]["id"] == forged.event_id
    assert opened.evidence["expected"]["amount"] == unpaid.amount

    # The same forgery again (a new event id) opens nothing more.
    again = stripe_shaped(
        "payment_intent.succeeded", claimed_paid(past_due, unpaid, pi), now + timedelta(seconds=1)
    )
    await handle.signal(SubscriptionWorkflow.gateway_event, again)
    await eventually(handle, lambda s: s.events.applied_count >= state.events.applied_count + 1)
    assert [
        x.id for x in ExceptionStore(billing_engine).list(limit=500) if x.gateway_ref == pi
    ] == [opened.id]


async def test_genuine_payment_event_is_recorded(billing: Billing, billing_engine: Engine) -> None:
    handle, past_due, _boundary = await renewal_needing(billing, FAILS_WHEN_CHARGED)
    (unpaid,) = past_due.unpaid_invoices
    pi = await billing.paid_intent(
        str(past_due.gateway_customer_id),
        unpaid.amount,
        {
            "dunwell_subscription_id": past_due.subscription_id,
            "dunwell_invoice_id": unpaid.invoice_id,
        },
    )
    now = await billing.env.get_current_time()
    event = stripe_shaped("payment_intent.succeeded", claimed_paid(past_due, unpaid, pi), now)
    await handle.signal(SubscriptionWorkflow.gateway_event, event)

    state = await eventually(handle, lambda s: not s.unpaid_invoices)
    assert str(billing.store.get(unpaid.invoice_id).status) == "paid"
    assert state.amount_paid == past_due.amount_paid + unpaid.amount
    assert exception_for(billing_engine, pi) is None
