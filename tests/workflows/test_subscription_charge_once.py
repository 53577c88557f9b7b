"""Never charge twice: a charge that went through but could not be recorded is found at
the gateway by the next attempt (a new idempotency key) and recorded instead.

The renewal's charge succeeds at localstripe, then recording the payment fails on every
retry (the recording activities are replaced by ones that charge for real and then fail
as a database that is down would). The invoice goes to dunning; the dunning retry looks
the gateway up first, finds the payment and records it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.billing import (
    BillingActivities,
    BillRequest,
    BillResult,
    ChargeAndRecordRequest,
)
from activities.stripe_gateway import StripeGateway
from billing.catalog import load_catalog
from billing.gateway import ChargeOutcome
from billing.lifecycle import SubscriptionStatus, Trigger
from dunwell.smtp_sink import SmtpSink
from ledger.compliance import ComplianceLedger
from ledger.invoices import InvoiceStore
from tax import BuiltinTaxEngine
from tests.support.localstripe import reset
from tests.workflows.conftest import running_billing
from tests.workflows.harness import API_KEY, REGISTRATIONS, Billing, eventually
from workflows.dunning import DunningWorkflow
from workflows.subscription import SubscriptionWorkflow


class RecordingFails:
    """``billing.bill`` and ``billing.charge_and_record`` as the real ones, except that
    while ``failing`` the payment is charged and then cannot be recorded."""

    def __init__(self, real: BillingActivities) -> None:
        self.real = real
        self.failing = False

    @activity.defn(name="billing.bill")
    async def bill(self, request: BillRequest) -> BillResult:
        if self.failing:
            raise ApplicationError("the database is unavailable", type="OperationalError")
        return await self.real.bill(request)

    @activity.defn(name="billing.charge_and_record")
    async def charge_and_record(self, request: ChargeAndRecordRequest) -> ChargeOutcome:
        if not self.failing:
            return await self.real.charge_and_record(request)
        await self.real.charge_invoice(request.charge)  # it goes through at the gateway
        raise ApplicationError("the database is unavailable", type="OperationalError")


@pytest.fixture
async def recording(
    temporal_time_env: WorkflowEnvironment,
    billing_engine: Engine,
    localstripe_url: str,
    mail_sink: SmtpSink,
) -> AsyncIterator[tuple[Billing, RecordingFails]]:
    reset(localstripe_url)
    gateway = StripeGateway(API_KEY, localstripe_url, timeout_seconds=10)
    store = InvoiceStore(billing_engine, issuer="dunwell")
    switch = RecordingFails(
        BillingActivities(
            invoices=store,
            tax_engine=BuiltinTaxEngine(seller_country="IE"),
            gateway=gateway,
            registrations=REGISTRATIONS,
            catalog=load_catalog(),
            certificates=ComplianceLedger(billing_engine),
        )
    )
    async with running_billing(
        temporal_time_env,
        billing_engine,
        localstripe_url,
        mail_sink,
        gateway=gateway,
        store=store,
        replacing=[switch.bill, switch.charge_and_record],
    ) as harness:
        yield harness, switch
    gateway.close()


def intents_for(billing: Billing, invoice_id: str) -> list[str]:
    """The status of every PaymentIntent at the gateway for the invoice (any attempt)."""
    intents = billing.stripe.v1.payment_intents.list(params={"limit": 100})
    return sorted(
        pi.status
        for pi in intents.data
        if invoice_id
        in (
            pi.metadata.to_dict().get("dunwell_invoice_id"),
            pi.metadata.to_dict().get("invoice_id"),
        )
    )


async def test_payment_made_but_not_recorded_is_not_charged_again_by_dunning(
    recording: tuple[Billing, RecordingFails],
) -> None:
    billing, switch = recording
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(minutes=1))
    first = await eventually(handle, lambda s: s.invoice_count == 1 and not s.unpaid_invoices)
    assert first.customer is not None

    switch.failing = True
    assert first.period_end is not None
    # The renewal's charge goes through and is never recorded: after the charge's
    # retries (about a quarter of an hour) the invoice is unpaid and goes to dunning,
    # whose first retry follows at once.
    await billing.sleep_until(first.period_end + timedelta(hours=1))
    latest = billing.client.get_workflow_handle_for(SubscriptionWorkflow.run, handle.id)
    recovered = await eventually(
        latest, lambda s: s.invoice_count == 2 and s.status is SubscriptionStatus.ACTIVE
    )
    renewal = recovered.invoices[-1]
    causes = [t.cause for t in recovered.transitions]
    assert causes[-2:] == [Trigger.RENEWAL_FAILED, Trigger.DUNNING_RECOVERED]
    assert recovered.unpaid_invoices == []
    assert intents_for(billing, renewal.invoice_id) == ["succeeded"], "charged exactly once"
    assert str(billing.store.get(renewal.invoice_id).status) == "paid"
    receivable = {a.code: a.balance for a in billing.ledger.trial_balance().accounts}
    assert receivable[f"receivable:{first.customer.customer_id}:EUR"] == 0
    child = billing.client.get_workflow_handle_for(
        DunningWorkflow.run, f"dunning-{renewal.invoice_id}"
    )
    result = await child.result()
    assert result.outcome == "recovered", "by the payment the gateway already held"
