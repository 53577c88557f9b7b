"""A subscription created through the API attaches its card inside the run.

The API only checks the token (read-only) before starting the workflow, so a start
that fails changes nothing at the gateway; the run attaches the card before its first
charge (tests/api/test_create_without_temporal.py covers the failed start).
"""

from __future__ import annotations

import uuid

from billing.lifecycle import SubscriptionStatus
from tests.workflows.harness import (
    VISA_OK,
    Billing,
    eventually,
    profile,
    record_history,
)
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import SubscriptionInput


async def _start(billing: Billing, gateway_customer_id: str, pm_id: str) -> str:
    subscription_id = f"sub_{uuid.uuid4().hex[:12]}"
    start = SubscriptionInput(
        subscription_id=subscription_id,
        customer=profile(f"cust_{uuid.uuid4().hex[:10]}"),
        gateway_customer_id=gateway_customer_id,
        default_payment_method_id=pm_id,
        plan_id="starter-monthly",
        currency="EUR",
        start_at=await billing.env.get_current_time(),
        attach_payment_method=True,
    )
    workflow_id = f"subscription-{subscription_id}"
    billing.started.append(workflow_id)
    await billing.client.start_workflow(
        SubscriptionWorkflow.run, start, id=workflow_id, task_queue=billing.task_queue
    )
    return workflow_id


async def test_the_run_attaches_the_card_before_its_first_charge(billing: Billing) -> None:
    customer_id = await billing.gateway.create_customer(
        idempotency_key=f"{uuid.uuid4().hex}:customer", email="ada@example.test"
    )
    pm_id = billing.card(VISA_OK)
    assert (await billing.gateway.retrieve_payment_method(pm_id)).customer_id is None
    handle = billing.client.get_workflow_handle_for(
        SubscriptionWorkflow.run, await _start(billing, customer_id, pm_id)
    )
    active = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert active.payment_method_to_attach is None
    assert active.payment_method is not None and active.payment_method.last4 == "4242"
    assert (await billing.gateway.retrieve_payment_method(pm_id)).customer_id == customer_id
    (invoice,) = active.invoices
    assert str(billing.store.get(invoice.invoice_id).status) == "paid"
    await record_history(handle, "subscription_attach_initial")


async def test_a_card_the_gateway_refuses_leaves_the_subscription_incomplete(
    billing: Billing,
) -> None:
    # The token is gone by the time the run tries to attach it (the API checked it).
    customer_id = await billing.gateway.create_customer(
        idempotency_key=f"{uuid.uuid4().hex}:customer", email="ada@example.test"
    )
    handle = billing.client.get_workflow_handle_for(
        SubscriptionWorkflow.run, await _start(billing, customer_id, "pm_doesnotexist")
    )
    owing = await eventually(handle, lambda s: len(s.unpaid_invoices) == 1)
    assert owing.status is SubscriptionStatus.INCOMPLETE
    assert owing.payment_method_to_attach is None
