"""``billing.charge_and_record`` against localstripe and PostgreSQL: a successful charge
is recorded once however often the activity is retried; a declined one records nothing.
``billing.issue_invoice`` (quote and invoice in one step) issues one invoice per key."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from activities.billing import (
    BillingActivities,
    ChargeAndRecordRequest,
    ChargeRequest,
    InvoiceLineInput,
    InvoiceSummary,
    IssueInvoiceRequest,
)
from billing.gateway import ChargeDeclined, ChargeOutcome, ChargeSucceeded
from billing.lifecycle import SubscriptionStatus
from dunwell.converter import data_converter
from ledger import chart
from tests.gateway_flows.conftest import Flows
from tests.workflows.harness import FAILS_WHEN_CHARGED, VISA_OK, eventually, profile
from workflows import WORKFLOWS
from workflows.subscription.state import SubscriptionState

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


async def test_a_worker_stopped_while_charging_leaves_the_next_one_to_charge_once(
    flows: Flows,
) -> None:
    """A worker that stops while its local charge attempt hangs waits for the attempt's
    timeout, then hands the charge to the activity; the next worker runs it under the
    same idempotency key. The history, with the failed attempt's marker, replays."""
    charging = asyncio.Event()

    @activity.defn(name="billing.charge_and_record")
    async def stuck(request: ChargeAndRecordRequest) -> ChargeOutcome:
        charging.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    doomed = flows.worker(replacing=[stuck])
    run = asyncio.create_task(doomed.run())
    handle = await flows.subscribe(VISA_OK)
    await asyncio.wait_for(charging.wait(), timeout=20)
    await doomed.shutdown()
    await run

    async with flows.worker():
        paid = await eventually(
            handle, lambda s: s.status is SubscriptionStatus.ACTIVE, timeout=120
        )
    assert_paid_once(flows, paid)
    history = await handle.fetch_history()
    assert charge_events(history) == (1, 1)
    await replays(history)
    await handle.terminate("test finished")


def assert_paid_once(flows: Flows, paid: SubscriptionState) -> None:
    """The subscription's only invoice is paid: charged once at the gateway, recorded once
    in the ledger."""
    (invoice,) = paid.invoices
    assert str(flows.store.get(invoice.invoice_id).status) == "paid"
    assert paid.customer is not None
    assert receivable(flows, paid.customer.customer_id) == 0, "recorded once"
    charges = flows.stripe.v1.charges.list({"customer": paid.gateway_customer_id}).data
    assert len(charges) == 1, "charged once"


async def replays(history: WorkflowHistory) -> None:
    """The run replays on the current code: a local attempt's failure, read back from its
    marker, leads to the same commands as when it happened."""
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=data_converter)
    await replayer.replay_workflow(history, raise_on_replay_failure=True)


def charge_events(history: WorkflowHistory) -> tuple[int, int]:
    """(local charge attempts recorded as markers, charge activities scheduled)."""
    name = "billing.charge_and_record"
    markers = scheduled = 0
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            data = marker.details["data"].SerializeToString() if "data" in marker.details else b""
            markers += marker.marker_name == "core_local_activity" and name.encode() in data
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled += event.activity_task_scheduled_event_attributes.activity_type.name == name
    return markers, scheduled


async def test_an_undecided_local_charge_is_charged_again_by_the_activity_once(
    flows: Flows,
) -> None:
    """The first attempt runs as a local activity. Here it reaches the gateway, records
    the payment and then fails as a lost answer would (retryable): the charge activity
    runs it again under the same idempotency key, and the gateway answers with the same
    payment."""
    real = flows.billing_activities()
    seen: list[bool] = []

    @activity.defn(name="billing.charge_and_record")
    async def answer_lost_once(request: ChargeAndRecordRequest) -> ChargeOutcome:
        seen.append(activity.info().is_local)
        outcome = await real.charge_and_record(request)
        if activity.info().is_local:
            raise ApplicationError("gateway timed out", type="gateway_unavailable")
        return outcome

    async with flows.worker(replacing=[answer_lost_once]):
        handle = await flows.subscribe(VISA_OK)
        paid = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert seen == [True, False], "one local attempt, then the activity"
    history = await handle.fetch_history()
    assert charge_events(history) == (1, 1)
    await replays(history)
    assert_paid_once(flows, paid)
    await handle.terminate("test finished")


async def test_a_definitive_error_of_the_local_charge_stands(flows: Flows) -> None:
    """A non-retryable error of the local attempt (the card cannot be used at all) is
    the charge's outcome: no activity charges again."""
    calls: list[bool] = []

    @activity.defn(name="billing.charge_and_record")
    async def unusable(request: ChargeAndRecordRequest) -> ChargeOutcome:
        calls.append(activity.info().is_local)
        raise ApplicationError("no such card", type="invalid_request", non_retryable=True)

    async with flows.worker(replacing=[unusable]):
        handle = await flows.subscribe(VISA_OK)
        unpaid = await eventually(handle, lambda s: len(s.unpaid_invoices) == 1)
    assert calls == [True]
    history = await handle.fetch_history()
    assert charge_events(history) == (1, 0)
    await replays(history)
    assert unpaid.status is SubscriptionStatus.INCOMPLETE
    assert unpaid.unpaid_invoices[0].decline_reason == "invalid_request"
    (invoice,) = unpaid.invoices
    assert str(flows.store.get(invoice.invoice_id).status) == "open"
    await handle.terminate("test finished")


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
