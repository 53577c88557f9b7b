"""Against localstripe: the first dunning charge fails on a card that cannot be charged;
the customer attaches a good card and its one immediate retry recovers the invoice."""

from __future__ import annotations

import uuid
from pathlib import Path

import stripe
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from activities.stripe_gateway import StripeGateway
from billing.dunning import CardRef, RetryAt, Trigger
from dunwell.smtp_sink import SmtpSink
from ledger.invoices import InvoiceStore
from tests.dunning_workflow.harness import API_KEY, Dunning
from tests.support.localstripe import reset
from workflows.dunning import DunningWorkflow, PaymentMethodUpdate

FAILS_WHEN_CHARGED = "4000000000000341"
VISA_OK = "4242424242424242"


def _card(client: stripe.StripeClient, number: str) -> str:
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    return pm.id


async def test_new_card_recovers_the_invoice(
    temporal_time_env: WorkflowEnvironment,
    dunning_engine: Engine,
    dunning_localstripe: str,
    sink: tuple[SmtpSink, Path],
) -> None:
    reset(dunning_localstripe)
    server, directory = sink
    dunning = Dunning(
        env=temporal_time_env,
        engine=dunning_engine,
        store=InvoiceStore(dunning_engine, issuer="dunwell"),
        gateway_url=dunning_localstripe,
        scripted=None,
        smtp_port=server.port,
        mail_dir=directory,
    )
    sdk = stripe.StripeClient(API_KEY, base_addresses={"api": dunning_localstripe})
    gateway = StripeGateway(API_KEY, dunning_localstripe, timeout_seconds=10)
    key = uuid.uuid4().hex
    customer = await gateway.create_customer(idempotency_key=f"{key}:c", email="ada@example.test")
    bad = _card(sdk, FAILS_WHEN_CHARGED)
    await gateway.attach_payment_method(
        payment_method_id=bad, customer_id=customer, idempotency_key=f"{key}:a1"
    )
    invoice = dunning.invoice()
    async with dunning.worker():
        # No first decline: the dunning run makes the first charge itself.
        handle = await dunning.start(
            invoice,
            first_decline=None,
            card=CardRef(bad, "visa"),
            payment_method_id=bad,
            gateway_customer_id=customer,
        )
        declined = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))
        assert len(declined.state.attempts) == 1 and not declined.state.attempts[0].succeeded

        good = _card(sdk, VISA_OK)
        attached = await gateway.attach_payment_method(
            payment_method_id=good, customer_id=customer, idempotency_key=f"{key}:a2"
        )
        await handle.execute_update(
            DunningWorkflow.payment_method_updated,
            PaymentMethodUpdate(good, CardRef(attached.fingerprint or good, "visa")),
        )
        result = await handle.result()
        final = await dunning.view(handle)
    dunning.close()
    gateway.close()

    assert result.outcome == "recovered" and result.attempts == 2
    assert final.state.attempts[-1].trigger is Trigger.PAYMENT_METHOD_UPDATED
    assert result.payment_ref is not None and result.payment_ref.startswith("pi_")
    intent = sdk.v1.payment_intents.retrieve(result.payment_ref)
    assert intent.status == "succeeded" and intent.payment_method == good
    assert dunning.store.get(invoice.id).status == "paid"
    assert dunning.kinds() == ["failure_notice", "recovered"]
