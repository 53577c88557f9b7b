"""``billing.charge_and_record`` against localstripe and PostgreSQL: a successful charge
is recorded once however often the activity is retried; a declined one records nothing.
``billing.issue_invoice`` (quote and invoice in one step) issues one invoice per key;
``billing.bill`` (issue and charge in one step) charges once however often it is retried.

The workflow's local attempts, and what follows when they fail, are in
``test_local_attempts.py``."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import ActivityEnvironment

from activities.billing import (
    BillingActivities,
    BillRequest,
    ChargeAndRecordRequest,
    ChargeRequest,
    ChargeTarget,
    InvoiceLineInput,
    InvoiceSummary,
    IssueInvoiceRequest,
)
from billing.gateway import ChargeDeclined, ChargeSucceeded
from ledger import chart
from tests.gateway_flows.conftest import Flows
from tests.workflows.harness import FAILS_WHEN_CHARGED, VISA_OK, profile

AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def issue_request(key: str, line: InvoiceLineInput) -> IssueInvoiceRequest:
    """One line invoiced for a month from AT, to a fresh customer named by ``key``."""
    return IssueInvoiceRequest(
        key=f"invoice:{key}",
        subscription_id=f"sub_{key}",
        customer=profile(f"cust_{key}"),
        currency="EUR",
        lines=[line],
        period_start=AT,
        period_end=AT + timedelta(days=30),
        at=AT,
    )


async def invoice_with_card(
    flows: Flows, acts: BillingActivities, card_number: str
) -> tuple[InvoiceSummary, ChargeRequest]:
    key = uuid.uuid4().hex[:12]
    line = InvoiceLineInput(
        line_id="starter", description="Starter", amount=900, tax_inclusive=False
    )
    quote_request = issue_request(key, line).tax_request()
    quote = await ActivityEnvironment().run(acts.quote_tax, quote_request)
    invoice = await ActivityEnvironment().run(
        acts.create_invoice, issue_request(key, line).with_quote(quote)
    )
    gateway_customer, card_id = await flows.customer_with_card(card_number)
    charge = ChargeRequest(
        subscription_id=f"sub_{key}",
        invoice_id=invoice.invoice_id,
        attempt=1,
        gateway_customer_id=gateway_customer,
        payment_method_id=card_id,
        amount=invoice.amount_remaining,
        currency="EUR",
    )
    return invoice, charge


def receivable(flows: Flows, customer_id: str) -> int:
    return flows.ledger.balance(chart.accounts_receivable(customer_id, "EUR").code).amount


async def test_a_retried_charge_and_record_pays_once(flows: Flows) -> None:
    acts = flows.billing_activities()
    invoice, charge = await invoice_with_card(flows, acts, VISA_OK)
    customer_id = flows.store.get(invoice.invoice_id).customer_id
    assert receivable(flows, customer_id) == invoice.total == 1071

    env = ActivityEnvironment()
    request = ChargeAndRecordRequest(charge, AT + timedelta(minutes=1))
    first = await env.run(acts.charge_and_record, request)
    again = await env.run(acts.charge_and_record, request)  # a retry of the same attempt

    assert isinstance(first, ChargeSucceeded) and again == first
    paid = flows.store.get(invoice.invoice_id)
    assert str(paid.status) == "paid" and paid.amount_remaining == 0
    assert receivable(flows, customer_id) == 0, "the payment was recorded once"
    charges = flows.stripe.v1.charges.list({"customer": charge.gateway_customer_id}).data
    assert len(charges) == 1 and charges[0].amount == 1071, "charged once"


async def test_a_declined_charge_records_nothing(flows: Flows) -> None:
    acts = flows.billing_activities()
    invoice, charge = await invoice_with_card(flows, acts, FAILS_WHEN_CHARGED)
    customer_id = flows.store.get(invoice.invoice_id).customer_id

    outcome = await ActivityEnvironment().run(
        acts.charge_and_record, ChargeAndRecordRequest(charge, AT)
    )

    assert isinstance(outcome, ChargeDeclined)
    assert str(flows.store.get(invoice.invoice_id).status) == "open"
    assert receivable(flows, customer_id) == invoice.total


async def test_issue_invoice_quotes_and_issues_once_per_key(flows: Flows) -> None:
    acts = flows.billing_activities()
    env = ActivityEnvironment()
    line = InvoiceLineInput(line_id="pro", description="Pro", amount=2900, tax_inclusive=False)
    request = issue_request(uuid.uuid4().hex[:12], line)
    customer = request.customer
    first = await env.run(acts.issue_invoice, request)
    again = await env.run(acts.issue_invoice, request)  # a retried local activity
    assert again == first
    quote = await env.run(acts.quote_tax, request.tax_request())
    assert (first.status, first.subtotal, first.tax_total) == ("open", 2900, quote.tax_total)
    assert first.total == first.amount_remaining == 2900 + quote.tax_total
    assert [i.id for i in flows.store.list_for_customer(customer.customer_id)] == [first.invoice_id]


async def test_bill_issues_and_charges_once_however_often_it_is_retried(flows: Flows) -> None:
    acts = flows.billing_activities()
    env = ActivityEnvironment()
    line = InvoiceLineInput(line_id="pro", description="Pro", amount=2900, tax_inclusive=False)
    issue = issue_request(uuid.uuid4().hex[:12], line)
    gateway_customer, card_id = await flows.customer_with_card(VISA_OK)
    request = BillRequest(issue, ChargeTarget(gateway_customer, card_id))

    first = await env.run(acts.bill, request)
    again = await env.run(acts.bill, request)  # a retry after an answer that was lost

    assert isinstance(first.outcome, ChargeSucceeded) and first.charge_error is None
    assert again.outcome == first.outcome, "the gateway answers the retry with the payment"
    paid = flows.store.get(first.invoice.invoice_id)
    assert str(paid.status) == "paid" and paid.amount_remaining == 0
    assert receivable(flows, issue.customer.customer_id) == 0, "recorded once"
    charges = flows.stripe.v1.charges.list({"customer": gateway_customer}).data
    assert [c.amount for c in charges] == [first.invoice.total], "charged once"


async def test_bill_without_a_card_issues_and_charges_nothing(flows: Flows) -> None:
    acts = flows.billing_activities()
    line = InvoiceLineInput(line_id="pro", description="Pro", amount=2900, tax_inclusive=False)
    issue = issue_request(uuid.uuid4().hex[:12], line)
    billed = await ActivityEnvironment().run(acts.bill, BillRequest(issue, None))
    assert (billed.outcome, billed.charge_error) == (None, None)
    assert str(flows.store.get(billed.invoice.invoice_id).status) == "open"


async def test_a_definitive_charge_error_is_the_bill_steps_result(flows: Flows) -> None:
    """A card the gateway does not know cannot be charged by any retry: the invoice is
    issued and stays open, and the error type is the result, as a decline would be."""
    acts = flows.billing_activities()
    line = InvoiceLineInput(line_id="pro", description="Pro", amount=2900, tax_inclusive=False)
    issue = issue_request(uuid.uuid4().hex[:12], line)
    gateway_customer, _ = await flows.customer_with_card(VISA_OK)
    target = ChargeTarget(gateway_customer, "pm_dunwell_unknown")

    billed = await ActivityEnvironment().run(acts.bill, BillRequest(issue, target))

    assert billed.outcome is None and billed.charge_error == "InvalidGatewayRequest"
    assert str(flows.store.get(billed.invoice.invoice_id).status) == "open"


async def test_a_later_attempt_records_the_payment_the_gateway_already_holds(
    flows: Flows,
) -> None:
    acts = flows.billing_activities()
    _invoice, charge = await invoice_with_card(flows, acts, VISA_OK)
    env = ActivityEnvironment()
    paid = await env.run(acts.charge_invoice, charge)  # went through, never recorded
    assert isinstance(paid, ChargeSucceeded)

    for later in (
        acts.charge_invoice,  # a retry on a new card
        acts.charge_invoice_on_session,  # the customer's own attempt in the portal
    ):
        again = await env.run(later, dataclasses.replace(charge, attempt=2))
        assert again == paid, "the payment already made, not a new one"
    charges = flows.stripe.v1.charges.list({"customer": charge.gateway_customer_id}).data
    assert len(charges) == 1, "charged once"


async def test_a_later_attempt_charges_when_nothing_was_paid(flows: Flows) -> None:
    acts = flows.billing_activities()
    invoice, charge = await invoice_with_card(flows, acts, VISA_OK)
    env = ActivityEnvironment()
    outcome = await env.run(acts.charge_invoice, dataclasses.replace(charge, attempt=2))
    assert isinstance(outcome, ChargeSucceeded)
    charges = flows.stripe.v1.charges.list({"customer": charge.gateway_customer_id}).data
    assert [c.amount for c in charges] == [invoice.total]
