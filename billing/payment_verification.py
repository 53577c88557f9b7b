"""Verify before believing: a payment event is recorded only once the gateway agrees.

A ``payment_intent.succeeded`` (or ``invoice.paid``) event says an invoice was paid;
it is a message about the payment, not the payment. ``gateway_reconciler.verify``
reads the PaymentIntent the event names back from the gateway, and
``payment_mismatches`` compares it with what the invoice expects:

    status      the intent has not succeeded (or does not exist at the gateway)
    amount      it paid another amount than the invoice is owed
    currency    it paid in another currency
    customer    it belongs to another gateway customer than the subscription's
    invoice     its ``dunwell_invoice_id`` metadata names another invoice (or none)

Only an intent with no mismatch is recorded. A mismatch records nothing and opens a
reconciliation exception (``finding``): ``status``, ``currency`` and ``amount`` by
their own class (``missing_at_gateway`` when the intent does not exist), ``customer``
and ``invoice`` as ``attribution``. The first class in that order names the exception;
its evidence lists every mismatch with what each side said.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from billing.gateway import PaymentIntentSnapshot, PaymentIntentStatus
from billing.reconciliation.model import ExceptionClass, Finding

INVOICE_METADATA_KEY = "dunwell_invoice_id"


class PaymentMismatch(StrEnum):
    MISSING = "missing"
    STATUS = "status"
    CURRENCY = "currency"
    AMOUNT = "amount"
    CUSTOMER = "customer"
    INVOICE = "invoice"


_CLASS = {
    PaymentMismatch.MISSING: ExceptionClass.MISSING_AT_GATEWAY,
    PaymentMismatch.STATUS: ExceptionClass.STATUS,
    PaymentMismatch.CURRENCY: ExceptionClass.CURRENCY,
    PaymentMismatch.AMOUNT: ExceptionClass.AMOUNT,
    PaymentMismatch.CUSTOMER: ExceptionClass.ATTRIBUTION,
    PaymentMismatch.INVOICE: ExceptionClass.ATTRIBUTION,
}


@dataclass(frozen=True)
class ExpectedPayment:
    """What the invoice expects of the payment that pays it (minor units)."""

    invoice_id: str
    subscription_id: str
    amount: int
    currency: str
    gateway_customer_id: str | None


def payment_mismatches(
    intent: PaymentIntentSnapshot | None, expected: ExpectedPayment
) -> tuple[PaymentMismatch, ...]:
    """Every way the gateway's intent disagrees with the invoice (none: it pays it)."""
    if intent is None:
        return (PaymentMismatch.MISSING,)
    found: list[PaymentMismatch] = []
    if intent.status is not PaymentIntentStatus.SUCCEEDED:
        found.append(PaymentMismatch.STATUS)
    if intent.amount.currency != expected.currency.upper():
        found.append(PaymentMismatch.CURRENCY)
    elif intent.amount.amount != expected.amount:
        found.append(PaymentMismatch.AMOUNT)
    if expected.gateway_customer_id is None or intent.customer_id != expected.gateway_customer_id:
        found.append(PaymentMismatch.CUSTOMER)
    if intent.metadata.get(INVOICE_METADATA_KEY) != expected.invoice_id:
        found.append(PaymentMismatch.INVOICE)
    return tuple(found)


def finding(
    payment_intent_id: str,
    intent: PaymentIntentSnapshot | None,
    expected: ExpectedPayment,
    mismatches: tuple[PaymentMismatch, ...],
    *,
    event_id: str | None,
    event_type: str | None,
) -> Finding:
    """The reconciliation exception a mismatch opens, once per (intent, invoice)."""
    assert mismatches, "a finding needs a mismatch"
    cls = _CLASS[mismatches[0]]
    gateway: dict[str, Any] | None = None
    if intent is not None:
        gateway = {
            "status": str(intent.status),
            "amount": intent.amount.amount,
            "currency": intent.amount.currency,
            "customer": intent.customer_id,
            "invoice": intent.metadata.get(INVOICE_METADATA_KEY),
        }
    return Finding(
        cls=cls,
        key=f"verify:{payment_intent_id}:{expected.invoice_id}",
        currency=expected.currency.upper(),
        amount=expected.amount,
        gateway_ref=payment_intent_id,
        evidence={
            "check": "gateway_reconciler.verify",
            "mismatches": [str(m) for m in mismatches],
            "event": {"id": event_id, "type": event_type},
            "expected": {
                "status": str(PaymentIntentStatus.SUCCEEDED),
                "amount": expected.amount,
                "currency": expected.currency.upper(),
                "customer": expected.gateway_customer_id,
                "invoice": expected.invoice_id,
                "subscription": expected.subscription_id,
            },
            "gateway": gateway,
        },
    )
