"""``payment_mismatches``: each way a gateway intent can disagree with an invoice, alone."""

from __future__ import annotations

import dataclasses

import pytest

from billing.gateway import PaymentIntentSnapshot, PaymentIntentStatus
from billing.money import Money
from billing.payment_verification import (
    ExpectedPayment,
    PaymentMismatch,
    finding,
    payment_mismatches,
)
from billing.reconciliation.model import ExceptionClass

EXPECTED = ExpectedPayment(
    invoice_id="inv_1",
    subscription_id="sub_1",
    amount=3451,
    currency="EUR",
    gateway_customer_id="cus_1",
)
PAYS = PaymentIntentSnapshot(
    id="pi_1",
    status=PaymentIntentStatus.SUCCEEDED,
    amount=Money(3451, "EUR"),
    customer_id="cus_1",
    payment_method_id="pm_1",
    latest_charge_id="ch_1",
    last_error=None,
    client_secret=None,
    metadata={"dunwell_invoice_id": "inv_1", "dunwell_subscription_id": "sub_1"},
)


def test_the_intent_that_pays_the_invoice_matches() -> None:
    assert payment_mismatches(PAYS, EXPECTED) == ()


@pytest.mark.parametrize(
    ("change", "mismatch", "cls"),
    [
        ({"status": PaymentIntentStatus.PROCESSING}, PaymentMismatch.STATUS, ExceptionClass.STATUS),
        ({"amount": Money(3450, "EUR")}, PaymentMismatch.AMOUNT, ExceptionClass.AMOUNT),
        ({"amount": Money(3451, "USD")}, PaymentMismatch.CURRENCY, ExceptionClass.CURRENCY),
        ({"customer_id": "cus_2"}, PaymentMismatch.CUSTOMER, ExceptionClass.ATTRIBUTION),
        ({"customer_id": None}, PaymentMismatch.CUSTOMER, ExceptionClass.ATTRIBUTION),
        ({"metadata": {"dunwell_invoice_id": "inv_2"}}, PaymentMismatch.INVOICE,
         ExceptionClass.ATTRIBUTION),
        ({"metadata": {}}, PaymentMismatch.INVOICE, ExceptionClass.ATTRIBUTION),
    ],
)  # fmt: skip
def test_each_mismatch_alone(
    change: dict[str, object], mismatch: PaymentMismatch, cls: ExceptionClass
) -> None:
    intent = dataclasses.replace(PAYS, **change)  # type: ignore[arg-type]
    assert payment_mismatches(intent, EXPECTED) == (mismatch,)
    found = finding("pi_1", intent, EXPECTED, (mismatch,), event_id="evt_1", event_type="t")
    assert found.cls is cls
    assert found.key == "verify:pi_1:inv_1"
    assert found.evidence["mismatches"] == [str(mismatch)]


def test_a_missing_intent_is_missing_at_the_gateway() -> None:
    assert payment_mismatches(None, EXPECTED) == (PaymentMismatch.MISSING,)
    found = finding(
        "pi_x", None, EXPECTED, (PaymentMismatch.MISSING,), event_id=None, event_type=None
    )
    assert found.cls is ExceptionClass.MISSING_AT_GATEWAY and found.evidence["gateway"] is None


def test_a_subscription_without_a_gateway_customer_accepts_no_intent() -> None:
    expected = dataclasses.replace(EXPECTED, gateway_customer_id=None)
    assert payment_mismatches(PAYS, expected) == (PaymentMismatch.CUSTOMER,)


def test_several_mismatches_name_the_exception_by_the_first() -> None:
    intent = dataclasses.replace(
        PAYS, status=PaymentIntentStatus.CANCELED, amount=Money(1, "EUR"), customer_id="cus_9"
    )
    found_mismatches = payment_mismatches(intent, EXPECTED)
    assert found_mismatches == (
        PaymentMismatch.STATUS,
        PaymentMismatch.AMOUNT,
        PaymentMismatch.CUSTOMER,
    )
    found = finding("pi_1", intent, EXPECTED, found_mismatches, event_id=None, event_type=None)
    assert found.cls is ExceptionClass.STATUS
    assert found.evidence["gateway"]["customer"] == "cus_9"
