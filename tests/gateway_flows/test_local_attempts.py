"""The subscription workflow's local attempts, and what finishes them when they fail.

A period's invoice is issued and charged by one local activity, ``billing.bill``
(generation 4), with one attempt. Its outcome stands when it gives one, a definitive
charge error included; when it fails, the invoice is issued again under its key (which
finds it) and the charge activity charges under the same idempotency key (which the
gateway answers with the attempt's payment if it went through.

Each test replays the history it made on the current code: a local attempt's failure,
read back from its marker, must lead to the same commands as when it happened.
"""

from __future__ import annotations

import asyncio
import dataclasses

from temporalio import activity
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from activities.billing import BillRequest, BillResult, ChargeAndRecordRequest
from billing.gateway import ChargeOutcome
from billing.lifecycle import SubscriptionStatus
from dunwell.converter import data_converter
from ledger import chart
from tests.gateway_flows.conftest import Flows
from tests.workflows.harness import FAILS_WHEN_CHARGED, VISA_OK, eventually
from workflows import WORKFLOWS
from workflows.manual_review import AcceptPaymentMethodRequest, ManualReviewWorkflow
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import (
    ChangePlanRequest,
    SetPaymentMethodRequest,
    SubscriptionState,
)

BILL = "billing.bill"
ISSUE = "billing.issue_invoice"
CHARGE = "billing.charge_and_record"


def receivable(flows: Flows, customer_id: str) -> int:
    return flows.ledger.balance(chart.accounts_receivable(customer_id, "EUR").code).amount


def assert_paid_once(flows: Flows, paid: SubscriptionState, invoices: int = 1) -> None:
    """Every invoice of the subscription is paid: charged once each at the gateway,
    recorded once each in the ledger and in the workflow's own payment history."""
    assert len(paid.invoices) == invoices
    for invoice in paid.invoices:
        assert str(flows.store.get(invoice.invoice_id).status) == "paid"
        assert invoice.status == "paid"
    assert paid.customer is not None
    assert receivable(flows, paid.customer.customer_id) == 0, "recorded once"
    charges = flows.stripe.v1.charges.list({"customer": paid.gateway_customer_id}).data
    assert len(charges) == invoices, "charged once per invoice"
    assert paid.successful_payments == invoices
    assert paid.amount_paid == sum(i.total for i in paid.invoices)


async def replays(history: WorkflowHistory) -> None:
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=data_converter)
    await replayer.replay_workflow(history, raise_on_replay_failure=True)


def local_attempts(history: WorkflowHistory, name: str) -> int:
    """Local activities of ``name`` recorded as markers."""
    count = 0
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            data = marker.details["data"].SerializeToString() if "data" in marker.details else b""
            count += marker.marker_name == "core_local_activity" and name.encode() in data
    return count


def scheduled(history: WorkflowHistory, name: str) -> int:
    """Normal activities of ``name`` scheduled."""
    return sum(
        event.activity_task_scheduled_event_attributes.activity_type.name == name
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
    )


async def test_a_worker_stopped_while_billing_leaves_the_next_one_to_charge_once(
    flows: Flows,
) -> None:
    """A worker that stops while its bill step hangs (the invoice issued, the charge
    not answered) waits for the attempt's timeout; the next worker issues under the same
    key, which finds the invoice, and the charge activity charges once."""
    real = flows.billing_activities()
    charging = asyncio.Event()

    @activity.defn(name=BILL)
    async def stuck(request: BillRequest) -> BillResult:
        await real.issue_invoice(request.invoice)
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
    assert (local_attempts(history, BILL), scheduled(history, CHARGE)) == (1, 1)
    await replays(history)
    await handle.terminate("test finished")


async def test_an_undecided_bill_step_is_finished_by_the_charge_activity_once(
    flows: Flows,
) -> None:
    """Here the bill step issues, charges and records the payment, then fails as a lost
    answer would (retryable): the invoice is found under its key, the charge activity
    runs under the same idempotency key and the gateway answers with the same payment,
    recorded once; the workflow counts the payment once too."""
    real = flows.billing_activities()
    charges: list[bool] = []

    @activity.defn(name=BILL)
    async def answer_lost(request: BillRequest) -> BillResult:
        await real.bill(request)
        raise ApplicationError("gateway timed out", type="gateway_unavailable")

    @activity.defn(name=CHARGE)
    async def charge(request: ChargeAndRecordRequest) -> ChargeOutcome:
        charges.append(activity.info().is_local)
        return await real.charge_and_record(request)

    async with flows.worker(replacing=[answer_lost, charge]):
        handle = await flows.subscribe(VISA_OK)
        paid = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert charges == [False], "no second local attempt: the activity, once"
    history = await handle.fetch_history()
    assert (local_attempts(history, BILL), local_attempts(history, ISSUE)) == (1, 1)
    assert (local_attempts(history, CHARGE), scheduled(history, CHARGE)) == (0, 1)
    await replays(history)
    assert_paid_once(flows, paid)
    await handle.terminate("test finished")


async def test_a_definitive_charge_error_of_the_bill_step_stands(flows: Flows) -> None:
    """A card the gateway does not know cannot be charged by any retry: the error type
    is the charge's outcome, the invoice stays open, and no activity charges again."""
    real = flows.billing_activities()

    @activity.defn(name=BILL)
    async def unknown_card(request: BillRequest) -> BillResult:
        assert request.charge is not None
        target = dataclasses.replace(request.charge, payment_method_id="pm_dunwell_unknown")
        return await real.bill(dataclasses.replace(request, charge=target))

    async with flows.worker(replacing=[unknown_card]):
        handle = await flows.subscribe(VISA_OK)
        unpaid = await eventually(handle, lambda s: len(s.unpaid_invoices) == 1)
    history = await handle.fetch_history()
    assert (local_attempts(history, BILL), scheduled(history, CHARGE)) == (1, 0)
    await replays(history)
    assert unpaid.status is SubscriptionStatus.INCOMPLETE
    assert unpaid.unpaid_invoices[0].decline_reason == "InvalidGatewayRequest"
    (invoice,) = unpaid.invoices
    assert str(flows.store.get(invoice.invoice_id).status) == "open"
    assert flows.stripe.v1.charges.list({"customer": unpaid.gateway_customer_id}).data == []
    await handle.terminate("test finished")


async def test_an_undecided_local_charge_of_a_review_retry_is_charged_by_the_activity_once(
    flows: Flows,
) -> None:
    """A plan change retried after ops' review is charged off-session, with one local
    attempt first (generation 3's). Here the attempt charges and records, then fails as a
    lost answer would: the charge activity runs under the same idempotency key and the
    payment is recorded once."""
    real = flows.billing_activities()
    charges: list[bool] = []

    @activity.defn(name=CHARGE)
    async def answer_lost_once(request: ChargeAndRecordRequest) -> ChargeOutcome:
        charges.append(activity.info().is_local)
        outcome = await real.charge_and_record(request)
        if activity.info().is_local:
            raise ApplicationError("gateway timed out", type="gateway_unavailable")
        return outcome

    async with flows.worker(replacing=[answer_lost_once]):
        handle = await flows.subscribe(VISA_OK)
        await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
        failing = flows.card(FAILS_WHEN_CHARGED)
        await handle.execute_update(
            SubscriptionWorkflow.set_default_payment_method, SetPaymentMethodRequest(failing)
        )
        reverted = await handle.execute_update(
            SubscriptionWorkflow.change_plan, ChangePlanRequest(plan_id="pro-monthly")
        )
        assert reverted.outcome == "reverted" and reverted.review_workflow_id
        review = flows.client.get_workflow_handle_for(
            ManualReviewWorkflow.run, reverted.review_workflow_id
        )
        good = flows.card(VISA_OK)
        await review.execute_update(
            ManualReviewWorkflow.accept_with_payment_method, AcceptPaymentMethodRequest(good)
        )
        changed = await eventually(handle, lambda s: s.plan_id == "pro-monthly")
    assert charges == [True, False], "one local attempt, then the activity"
    history = await handle.fetch_history()
    assert (local_attempts(history, CHARGE), scheduled(history, CHARGE)) == (1, 1)
    await replays(history)
    retry = changed.plan_changes[-1]
    assert retry.outcome == "applied" and retry.invoice_id is not None
    assert str(flows.store.get(retry.invoice_id).status) == "paid"
    charged = flows.stripe.v1.charges.list({"customer": changed.gateway_customer_id}).data
    paid = [c for c in charged if c.status == "succeeded" and c.payment_method == good]
    assert len(paid) == 1, "the retry was charged once"
    await handle.terminate("test finished")
