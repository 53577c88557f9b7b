"""A gateway outage at renewal is not a decline: the charge is retried through it with an
ops alert, nothing goes to dunning, the customer hears nothing, and the invoice is
charged once when the gateway answers again.

The worker's gateway sits behind a switchable proxy in front of localstripe
(tests/support/gateway_proxy.py): it refuses the API key (401) or drops every
connection for 20 minutes of workflow time (the time-skipping server), then passes
requests through again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.stripe_gateway import StripeGateway
from billing.lifecycle import SubscriptionStatus
from billing.periods import period_end
from dunwell.smtp_sink import SmtpSink
from stores.notifications import notifications_for_customer
from tests.support.gateway_proxy import GatewayProxy, Mode
from tests.support.localstripe import reset
from tests.workflows.conftest import running_billing
from tests.workflows.harness import API_KEY, Billing, eventually
from workflows import search_attributes as sa
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SubscriptionState

OUTAGE = timedelta(minutes=20)


@pytest.fixture
def proxy(localstripe_url: str) -> Iterator[GatewayProxy]:
    with GatewayProxy(localstripe_url) as running:
        yield running


@pytest.fixture
async def billing_behind_proxy(
    temporal_time_env: WorkflowEnvironment,
    billing_engine: Engine,
    localstripe_url: str,
    mail_sink: SmtpSink,
    proxy: GatewayProxy,
) -> AsyncIterator[Billing]:
    """The ``billing`` harness, with the worker's gateway behind the proxy (the test's
    own gateway, which sets up customers and cards, goes straight to localstripe)."""
    reset(localstripe_url)
    direct = StripeGateway(API_KEY, localstripe_url, timeout_seconds=10)
    proxied = StripeGateway(API_KEY, proxy.url, timeout_seconds=10)
    async with running_billing(
        temporal_time_env,
        billing_engine,
        localstripe_url,
        mail_sink,
        gateway=direct,
        worker_gateway=proxied,
        worker_api_base=proxy.url,
    ) as harness:
        yield harness
    direct.close()
    proxied.close()


def charges_for(billing: Billing, invoice_id: str) -> list[str]:
    """The status of every PaymentIntent the gateway holds for the invoice."""
    intents = billing.stripe.v1.payment_intents.list(params={"limit": 100})
    return [
        pi.status
        for pi in intents.data
        if pi.metadata.to_dict().get("dunwell_invoice_id") == invoice_id
    ]


async def no_workflow(billing: Billing, workflow_id: str) -> bool:
    try:
        await billing.client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


async def alert_shown(handle: WorkflowHandle[Any, Any]) -> str | None:
    return (await handle.describe()).typed_search_attributes.get(sa.GATEWAY_ALERT)


@pytest.mark.parametrize(
    ("mode", "failure"), [("unauthorized", "authentication"), ("disconnect", "connection")]
)
async def test_outage_at_renewal_is_waited_out_and_charged_once(
    billing_behind_proxy: Billing,
    billing_engine: Engine,
    proxy: GatewayProxy,
    mode: Mode,
    failure: str,
) -> None:
    billing = billing_behind_proxy
    start = await billing.soon()
    boundary = period_end(start, start, "month")
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(minutes=1))
    first = await eventually(handle, lambda s: s.invoice_count == 1 and not s.unpaid_invoices)
    assert first.customer is not None
    customer_id = first.customer.customer_id

    proxy.mode = mode
    await billing.sleep_until(boundary + OUTAGE)
    latest = billing.client.get_workflow_handle_for(SubscriptionWorkflow.run, handle.id)
    during: SubscriptionState = await eventually(
        latest, lambda s: s.invoice_count == 2 and s.gateway_alert is not None
    )
    renewal = during.invoices[-1]
    # The outage is not a decline: nothing unpaid, no dunning, no change of status.
    assert during.gateway_alert == failure
    assert await alert_shown(latest) == failure
    assert during.status is SubscriptionStatus.ACTIVE
    assert during.unpaid_invoices == []
    assert renewal.status == "open"
    assert await no_workflow(billing, f"dunning-{renewal.invoice_id}")
    assert proxy.refused_count("POST", "/v1/payment_intents") > 10, "retried, backing off"
    assert charges_for(billing, renewal.invoice_id) == []

    proxy.mode = "pass"
    await billing.sleep_until(boundary + OUTAGE + timedelta(hours=1))
    after = await eventually(
        latest,
        lambda s: (
            s.gateway_alert is None
            and any(i.invoice_id == renewal.invoice_id and i.status == "paid" for i in s.invoices)
        ),
    )
    assert after.status is SubscriptionStatus.ACTIVE
    assert after.unpaid_invoices == []
    assert await alert_shown(latest) is None
    assert charges_for(billing, renewal.invoice_id) == ["succeeded"], "charged exactly once"
    assert str(billing.store.get(renewal.invoice_id).status) == "paid"
    assert await no_workflow(billing, f"dunning-{renewal.invoice_id}")
    # The customer was told nothing: no notice recorded, none mailed.
    assert notifications_for_customer(billing_engine, customer_id) == []
    assert after.notices_sent == []
