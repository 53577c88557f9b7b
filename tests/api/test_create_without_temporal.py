"""Creating a subscription while Temporal is unreachable changes nothing anywhere.

The API's Temporal client was connected before the outage (a cached connection), so
only the workflow start can fail; the gateway must not have been touched by then.
"""

from __future__ import annotations

import uuid

import stripe
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from dunwell.converter import data_converter
from dunwell.settings import Settings
from ledger.db import make_engine
from stores.customers import subscription_by_idempotency_key
from tests.api.conftest import (
    AUTH,
    STRIPE_KEY,
    build_app,
    card_token,
    create_customer,
    running,
    until,
)
from tests.support.tcp_proxy import TcpProxy


async def test_a_503_leaves_the_card_unattached_and_the_retry_attaches_it(
    temporal_dev_env: WorkflowEnvironment,
    live_settings: Settings,
    localstripe_url: str,
    api_db_url: str,
) -> None:
    upstream = temporal_dev_env.client.service_client.config.target_host
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe_url})
    async with TcpProxy(upstream) as proxy:
        client = await Client.connect(proxy.address, data_converter=data_converter)
        async with running(build_app(live_settings, client)) as http:
            customer = await create_customer(http)
            token = card_token(localstripe_url)
            key = f"create-{uuid.uuid4().hex}"
            body = {"customer_id": customer["id"], "plan_id": "starter-monthly", "currency": "EUR"}
            body["payment_method_id"] = token
            headers = {**AUTH, "Idempotency-Key": key}

            proxy.cut()
            refused = await http.post("/v1/subscriptions", json=body, headers=headers)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "temporal_unavailable"
            assert "nothing was changed" in refused.json()["error"]["message"]
            assert gateway.v1.payment_methods.retrieve(token).customer is None
            engine = make_engine(api_db_url)
            try:
                with engine.connect() as conn:
                    assert subscription_by_idempotency_key(conn, key) is None
            finally:
                engine.dispose()

            proxy.restore()
            created = await http.post("/v1/subscriptions", json=body, headers=headers)
            assert created.status_code == 201, created.text
            active = await until(http, created.json()["id"], lambda s: s["status"] == "active")
            assert active["payment_method_id"] == token
            pm = gateway.v1.payment_methods.retrieve(token)
            assert pm.customer == customer["gateway_customer_id"]
            remote = gateway.v1.customers.retrieve(customer["gateway_customer_id"])
            assert remote.invoice_settings.default_payment_method == token
