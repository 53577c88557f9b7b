"""The development gateway lists each type from its own index (dunwell.fake_gateway):
listings still see exactly what the store holds, after creates, deletes and a reset."""

from __future__ import annotations

import stripe

from tests.support.localstripe import reset


def customer_ids(client: stripe.StripeClient) -> list[str]:
    return [c.id for c in client.v1.customers.list({"limit": 100}).data]


def test_a_listing_shows_created_and_not_deleted_objects(
    stripe_client: stripe.StripeClient,
) -> None:
    made = [stripe_client.v1.customers.create({"email": f"c{i}@example.test"}) for i in range(3)]
    stripe_client.v1.customers.delete(made[1].id)
    assert sorted(customer_ids(stripe_client)) == sorted([made[0].id, made[2].id])
    # Another type is listed apart: a product is not a customer.
    stripe_client.v1.products.create({"name": "Pro"})
    assert len(customer_ids(stripe_client)) == 2


def test_a_refund_is_listed_on_its_charge(stripe_client: stripe.StripeClient) -> None:
    customer = stripe_client.v1.customers.create()
    card = stripe_client.v1.payment_methods.retrieve("pm_card_visa")
    stripe_client.v1.payment_methods.attach(card.id, {"customer": customer.id})
    intent = stripe_client.v1.payment_intents.create(
        {
            "amount": 1500,
            "currency": "eur",
            "customer": customer.id,
            "payment_method": card.id,
            "off_session": True,
            "confirm": True,
        }
    )
    charge_id = intent.latest_charge if isinstance(intent.latest_charge, str) else None
    charges = stripe_client.v1.charges.list({"customer": customer.id}).data
    charge_id = charge_id or charges[0].id
    stripe_client.v1.refunds.create({"charge": charge_id, "amount": 500})
    charge = stripe_client.v1.charges.retrieve(charge_id)
    assert charge.amount_refunded == 500 and not charge.refunded


def test_a_reset_empties_every_listing(
    localstripe: str, stripe_client: stripe.StripeClient
) -> None:
    stripe_client.v1.customers.create()
    assert customer_ids(stripe_client)
    reset(localstripe)
    assert customer_ids(stripe_client) == []
