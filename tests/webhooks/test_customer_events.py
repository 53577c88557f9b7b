"""Customer-scoped gateway events reach every subscription of the gateway customer.

A card updater's ``payment_method.automatically_updated`` carries no subscription
metadata, only the gateway customer: the intake delivers one copy to each of that
customer's subscriptions in the directory, once, and parks it when the customer has
none.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.service import RPCError, RPCStatusCode

from billing.catalog import BillingAddress
from billing.events import GatewayEvent, gateway_customer_of, stripe_event_for
from ledger.db import make_engine
from stores.customers import (
    CustomerRecord,
    SubscriptionRecord,
    insert_customer,
    insert_subscription,
)
from tests.webhooks.conftest import (
    OPS_API_KEY,
    delivered_row,
    new_id,
    post_stripe,
    processed_row,
    signalled_events,
    stripe_event,
)


@pytest.fixture
def directory(events_db_url: str) -> Iterator[Engine]:
    engine = make_engine(events_db_url)
    yield engine
    engine.dispose()


def customer_with_subscriptions(engine: Engine, count: int) -> tuple[str, list[str]]:
    """A directory customer known to the gateway as a new ``cus_…``, with ``count``
    subscriptions: (gateway customer id, subscription ids)."""
    gateway_customer = new_id("cus")
    customer_id = f"cust_{uuid.uuid4().hex[:10]}"
    now = datetime.now(UTC)
    subscription_ids = [new_id("sub") for _ in range(count)]
    with engine.begin() as conn:
        insert_customer(
            conn,
            CustomerRecord(
                id=customer_id,
                email="ada@example.test",
                name="Ada",
                address=BillingAddress(
                    country="DE", state=None, postal_code="10115", city="Berlin", line1="x"
                ),
                tax_id=None,
                timezone="UTC",
                gateway_customer_id=gateway_customer,
                created_at=now,
            ),
        )
        for subscription_id in subscription_ids:
            insert_subscription(
                conn,
                SubscriptionRecord(
                    id=subscription_id,
                    customer_id=customer_id,
                    plan_id="pro-monthly",
                    currency="EUR",
                    workflow_id=f"subscription-{subscription_id}",
                    created_at=now,
                ),
            )
    return gateway_customer, subscription_ids


def card_updated(gateway_customer: str) -> dict[str, Any]:
    """What the card account updater sends: the payment method and its customer only."""
    return stripe_event(
        "payment_method.automatically_updated",
        obj={
            "id": new_id("pm"),
            "object": "payment_method",
            "type": "card",
            "customer": gateway_customer,
            "card": {"brand": "visa", "last4": "4242", "exp_month": 3, "exp_year": 2034},
            "metadata": {},
        },
    )


async def test_card_updater_event_reaches_every_subscription_of_the_customer(
    api, directory, events_db_url, temporal_dev_env
):
    gateway_customer, subscription_ids = customer_with_subscriptions(directory, 2)
    _, others = customer_with_subscriptions(directory, 1)  # another customer's
    event = card_updated(gateway_customer)

    response = await post_stripe(api, event)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "event_id": event["id"]}
    for subscription_id in subscription_ids:
        copy_id = f"{event['id']}#{subscription_id}"
        row = await delivered_row(events_db_url, copy_id)
        assert row["subscription_id"] == subscription_id
        (signal,) = await signalled_events(temporal_dev_env.client, subscription_id)
        assert (signal.event_id, signal.subscription_id, signal.type) == (
            copy_id,
            subscription_id,
            "payment_method.automatically_updated",
        )
        assert signal.object_id == event["data"]["object"]["id"]
        assert signal.payload == event["data"]["object"]
    assert processed_row(events_db_url, event["id"]) is None, "recorded as its copies only"
    for other in others:
        with pytest.raises(RPCError) as missing:
            await signalled_events(temporal_dev_env.client, other)
        assert missing.value.status == RPCStatusCode.NOT_FOUND, "never signalled nor started"

    # A redelivery is a duplicate for every subscription: nothing is signalled again.
    again = await post_stripe(api, event)
    assert again.json() == {"status": "duplicate", "event_id": event["id"]}
    for subscription_id in subscription_ids:
        assert len(await signalled_events(temporal_dev_env.client, subscription_id)) == 1


async def test_event_of_a_customer_without_subscriptions_is_parked(api, directory):
    gateway_customer, _ = customer_with_subscriptions(directory, 0)
    unknown = card_updated(new_id("cus"))
    without = card_updated(gateway_customer)
    answers = [await post_stripe(api, unknown), await post_stripe(api, without)]
    assert [a.json()["status"] for a in answers] == ["parked", "parked"]
    listed = await api.get(
        "/v1/ops/parked-events?limit=500", headers={"Authorization": f"Bearer {OPS_API_KEY}"}
    )
    reasons = {i["event_id"]: i["reason"] for i in listed.json()["items"]}
    assert reasons[unknown["id"]] == reasons[without["id"]] == "no_subscription"


@pytest.mark.parametrize(
    ("event_type", "obj", "expected"),
    [
        ("payment_method.automatically_updated", {"object": "payment_method", "customer": "cus_A1"}, "cus_A1"),
        ("payment_method.attached", {"object": "payment_method", "customer": {"id": "cus_A1"}}, "cus_A1"),
        ("payment_method.detached", {"object": "payment_method", "customer": None}, None),
        ("customer.updated", {"object": "customer", "id": "cus_A1"}, "cus_A1"),
        ("customer.subscription.updated", {"object": "subscription", "customer": "cus_A1"}, None),
        ("invoice.paid", {"object": "invoice", "customer": "cus_A1"}, None),
        ("customer.updated", {"object": "customer", "id": "cus_a b"}, None),
    ],
)  # fmt: skip
def test_gateway_customer_of(event_type: str, obj: dict[str, Any], expected: str | None) -> None:
    raw = {"id": "evt_1", "type": event_type, "created": 1, "data": {"object": {"id": "x", **obj}}}
    assert gateway_customer_of(raw) == expected


def test_a_copy_for_one_subscription_is_routed_to_it_under_its_own_id() -> None:
    raw = card_updated("cus_A1")
    copy = stripe_event_for(raw, "sub_1")
    assert isinstance(copy, GatewayEvent)
    assert (copy.event_id, copy.subscription_id) == (f"{raw['id']}#sub_1", "sub_1")
    assert copy.order_key[2] == copy.event_id
