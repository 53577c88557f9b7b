"""The Stripe adapter against localstripe, through the real SDK over HTTP."""

from __future__ import annotations

import pytest
import stripe

from activities.gateway_errors import to_application_error
from activities.stripe_gateway import StripeGateway
from billing.declines import DeclineFamily
from billing.gateway import (
    CardDeclined,
    ChargeDeclined,
    ChargeRequiresAction,
    ChargeSucceeded,
    IdempotencyConflict,
    InvalidGatewayRequest,
    MissingIdempotencyKey,
    PaymentIntentStatus,
)
from billing.money import Money

# Stripe test cards; localstripe gives them the documented behaviour.
VISA_OK = "4242424242424242"
FAILS_WHEN_CHARGED = "4000000000000341"
REQUIRES_3DS = "4000002500003155"
DECLINED_ON_ATTACH = "4000000000000002"


def card(client: stripe.StripeClient, number: str) -> str:
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    return pm.id


async def customer_with_card(
    gateway: StripeGateway, client: stripe.StripeClient, number: str, key: str
) -> tuple[str, str]:
    customer_id = await gateway.create_customer(idempotency_key=f"{key}:customer", email="a@x.test")
    pm_id = card(client, number)
    await gateway.attach_payment_method(
        payment_method_id=pm_id, customer_id=customer_id, idempotency_key=f"{key}:attach"
    )
    await gateway.set_default_payment_method(
        customer_id=customer_id, payment_method_id=pm_id, idempotency_key=f"{key}:default"
    )
    return customer_id, pm_id


async def test_customer_setup_intent_and_payment_method_flow(gateway, stripe_client):
    customer_id = await gateway.create_customer(
        idempotency_key="sub_1:customer", email="ada@x.test", name="Ada", metadata={"sub": "1"}
    )
    assert customer_id.startswith("cus_")

    seti = await gateway.create_setup_intent(
        customer_id=customer_id, idempotency_key="sub_1:seti:1"
    )
    assert seti.id.startswith("seti_")
    assert seti.customer_id == customer_id
    assert seti.status == "requires_payment_method"
    assert seti.client_secret.startswith(seti.id)

    # What Stripe.js does in the portal: confirm the SetupIntent with the card.
    pm_id = card(stripe_client, VISA_OK)
    stripe_client.v1.setup_intents.confirm(seti.id, params={"payment_method": pm_id})
    confirmed = await gateway.retrieve_setup_intent(seti.id)
    assert confirmed.status == "succeeded"
    assert confirmed.payment_method_id == pm_id

    details = await gateway.attach_payment_method(
        payment_method_id=pm_id, customer_id=customer_id, idempotency_key="sub_1:attach:1"
    )
    assert (details.id, details.customer_id, details.last4) == (pm_id, customer_id, "4242")
    assert (details.exp_month, details.exp_year) == (12, 2031)
    assert details.brand == "visa" and details.country

    await gateway.set_default_payment_method(
        customer_id=customer_id, payment_method_id=pm_id, idempotency_key="sub_1:default:1"
    )
    assert await gateway.default_payment_method(customer_id) == pm_id
    assert [pm.id for pm in await gateway.list_payment_methods(customer_id)] == [pm_id]

    detached = await gateway.detach_payment_method(
        payment_method_id=pm_id, idempotency_key="sub_1:detach:1"
    )
    assert detached.customer_id is None
    assert await gateway.list_payment_methods(customer_id) == ()


async def test_setup_intent_on_3ds_card_requires_action(gateway, stripe_client):
    customer_id = await gateway.create_customer(idempotency_key="c3ds:customer")
    seti = await gateway.create_setup_intent(customer_id=customer_id, idempotency_key="c3ds:seti")
    stripe_client.v1.setup_intents.confirm(
        seti.id, params={"payment_method": card(stripe_client, REQUIRES_3DS)}
    )
    assert (await gateway.retrieve_setup_intent(seti.id)).status == "requires_action"


async def test_attach_declined_card_raises_classified_non_retryable(gateway, stripe_client):
    customer_id = await gateway.create_customer(idempotency_key="cdecl:customer")
    with pytest.raises(CardDeclined) as caught:
        await gateway.attach_payment_method(
            payment_method_id=card(stripe_client, DECLINED_ON_ATTACH),
            customer_id=customer_id,
            idempotency_key="cdecl:attach",
        )
    assert caught.value.decline.code == "card_declined"
    assert caught.value.classification.family is DeclineFamily.SOFT
    app_error = to_application_error(caught.value)
    assert app_error.type == "CardDeclined" and app_error.non_retryable
    assert app_error.details[0]["family"] == "soft"


async def test_off_session_charge_succeeds(gateway, stripe_client):
    customer_id, pm_id = await customer_with_card(gateway, stripe_client, VISA_OK, "ok")
    outcome = await gateway.charge_off_session(
        customer_id=customer_id,
        payment_method_id=pm_id,
        amount=Money(2500, "EUR"),
        idempotency_key="inv_1:attempt:1",
        metadata={"invoice_id": "inv_1"},
    )
    assert isinstance(outcome, ChargeSucceeded)
    assert outcome.amount == Money(2500, "EUR")
    assert outcome.charge_id and outcome.charge_id.startswith("ch_")
    snapshot = await gateway.retrieve_payment_intent(outcome.payment_intent_id)
    assert snapshot.status is PaymentIntentStatus.SUCCEEDED
    assert snapshot.metadata == {"invoice_id": "inv_1"}
    assert (snapshot.customer_id, snapshot.payment_method_id) == (customer_id, pm_id)

    refund = await gateway.create_refund(
        payment_intent_id=outcome.payment_intent_id,
        amount=Money(1000, "EUR"),
        idempotency_key="inv_1:refund:1",
    )
    assert refund.amount == Money(1000, "EUR") and refund.status == "succeeded"

    page = await gateway.list_balance_transactions(limit=10)
    amounts = sorted(txn.amount.amount for txn in page.items)
    assert amounts == [-1000, 2500]
    assert {txn.source_id for txn in page.items} == {outcome.charge_id, refund.id}


async def test_generic_decline_is_a_declined_outcome(gateway, stripe_client):
    customer_id, pm_id = await customer_with_card(gateway, stripe_client, FAILS_WHEN_CHARGED, "d")
    outcome = await gateway.charge_off_session(
        customer_id=customer_id,
        payment_method_id=pm_id,
        amount=Money(2500, "EUR"),
        idempotency_key="inv_2:attempt:1",
    )
    assert isinstance(outcome, ChargeDeclined)
    assert outcome.decline.code == "card_declined"
    assert outcome.classification.family is DeclineFamily.SOFT
    assert outcome.client_secret is None
    # localstripe names only the failed charge; the adapter finds its intent.
    assert outcome.payment_intent_id and outcome.payment_intent_id.startswith("pi_")
    snapshot = await gateway.retrieve_payment_intent(outcome.payment_intent_id)
    assert snapshot.status is PaymentIntentStatus.REQUIRES_PAYMENT_METHOD
    assert snapshot.last_error is not None and snapshot.last_error.code == "card_declined"


@pytest.mark.parametrize("off_session", [True, False])
async def test_3ds_card_requires_action(gateway, stripe_client, off_session):
    customer_id, pm_id = await customer_with_card(gateway, stripe_client, REQUIRES_3DS, "3ds")
    charge = gateway.charge_off_session if off_session else gateway.charge_on_session
    outcome = await charge(
        customer_id=customer_id,
        payment_method_id=pm_id,
        amount=Money(4900, "GBP"),
        idempotency_key="inv_3:attempt:1",
    )
    assert isinstance(outcome, ChargeRequiresAction)
    # The outcome goes into workflow history: it names the intent, never its secret.
    assert outcome.client_secret is None
    assert outcome.amount == Money(4900, "GBP")

    canceled = await gateway.cancel_payment_intent(
        payment_intent_id=outcome.payment_intent_id, idempotency_key="inv_3:cancel"
    )
    assert canceled.status is PaymentIntentStatus.CANCELED


async def test_retry_with_same_key_creates_one_payment_intent(gateway, stripe_client):
    customer_id, pm_id = await customer_with_card(gateway, stripe_client, VISA_OK, "idem")
    kwargs = dict(
        customer_id=customer_id,
        payment_method_id=pm_id,
        amount=Money(1999, "USD"),
        idempotency_key="inv_4:attempt:1",
    )
    first = await gateway.charge_off_session(**kwargs)
    again = await gateway.charge_off_session(**kwargs)
    assert isinstance(first, ChargeSucceeded) and again == first
    intents = stripe_client.v1.payment_intents.list(params={"limit": 100}).data
    assert [pi.id for pi in intents] == [first.payment_intent_id]

    other = await gateway.charge_off_session(**{**kwargs, "idempotency_key": "inv_4:attempt:2"})
    assert other.payment_intent_id != first.payment_intent_id

    with pytest.raises(IdempotencyConflict) as caught:
        await gateway.charge_off_session(**{**kwargs, "amount": Money(1, "USD")})
    assert to_application_error(caught.value).non_retryable


async def test_declined_retry_with_same_key_replays_the_decline(gateway, stripe_client):
    customer_id, pm_id = await customer_with_card(gateway, stripe_client, FAILS_WHEN_CHARGED, "rd")
    kwargs = dict(
        customer_id=customer_id,
        payment_method_id=pm_id,
        amount=Money(500, "EUR"),
        idempotency_key="inv_5:attempt:1",
    )
    first = await gateway.charge_off_session(**kwargs)
    again = await gateway.charge_off_session(**kwargs)
    assert isinstance(first, ChargeDeclined) and again == first
    assert len(stripe_client.v1.payment_intents.list(params={"limit": 100}).data) == 1


@pytest.mark.parametrize("key", ["", "   ", None, "k" * 256])
async def test_write_without_usable_key_is_refused_before_any_request(gateway, stripe_client, key):
    with pytest.raises(MissingIdempotencyKey):
        await gateway.create_customer(idempotency_key=key, email="nobody@x.test")
    with pytest.raises(MissingIdempotencyKey):
        await gateway.charge_off_session(
            customer_id="cus_x",
            payment_method_id="pm_x",
            amount=Money(1, "EUR"),
            idempotency_key=key,
        )
    assert stripe_client.v1.customers.list().data == []
    assert stripe_client.v1.payment_intents.list().data == []
    app_error = to_application_error(MissingIdempotencyKey("x"))
    assert app_error.type == "MissingIdempotencyKey" and app_error.non_retryable


async def test_unknown_object_is_a_non_retryable_invalid_request(gateway):
    with pytest.raises(InvalidGatewayRequest) as caught:
        await gateway.retrieve_payment_intent("pi_doesnotexist")
    app_error = to_application_error(caught.value)
    assert app_error.type == "InvalidGatewayRequest" and app_error.non_retryable


async def test_payouts_page_through_with_a_cursor(gateway, stripe_client):
    for amount in (1000, 2000, 3000):
        stripe_client.v1.payouts.create(params={"amount": amount, "currency": "eur"})
    first = await gateway.list_payouts(limit=2)
    assert len(first.items) == 2 and first.has_more and first.next_cursor == first.items[-1].id
    rest = await gateway.list_payouts(limit=2, starting_after=first.next_cursor)
    assert not rest.has_more and rest.next_cursor is None
    seen = [p.amount for p in first.items + rest.items]
    assert sorted(m.amount for m in seen) == [1000, 2000, 3000]
    assert {m.currency for m in seen} == {"EUR"}


async def test_find_succeeded_payment_by_customer_and_invoice_metadata(gateway, stripe_client):
    customer_id, pm_ok = await customer_with_card(gateway, stripe_client, VISA_OK, "find")
    other_customer, other_pm = await customer_with_card(gateway, stripe_client, VISA_OK, "other")
    declines = card(stripe_client, FAILS_WHEN_CHARGED)
    await gateway.attach_payment_method(
        payment_method_id=declines, customer_id=customer_id, idempotency_key="find:declines"
    )
    amount = Money(3451, "EUR")
    assert await gateway.find_succeeded_payment(customer_id=customer_id, invoice_id="inv_1") is None
    # A declined attempt for the invoice, a payment of another invoice, and the same
    # invoice id paid by another customer: none of them paid inv_1 for this customer.
    await gateway.charge_off_session(
        customer_id=customer_id,
        payment_method_id=declines,
        amount=amount,
        idempotency_key="inv_1:attempt:1",
        metadata={"dunwell_invoice_id": "inv_1"},
    )
    await gateway.charge_off_session(
        customer_id=customer_id,
        payment_method_id=pm_ok,
        amount=amount,
        idempotency_key="inv_2:attempt:1",
        metadata={"dunwell_invoice_id": "inv_2"},
    )
    await gateway.charge_off_session(
        customer_id=other_customer,
        payment_method_id=other_pm,
        amount=amount,
        idempotency_key="other:inv_1:attempt:1",
        metadata={"dunwell_invoice_id": "inv_1"},
    )
    assert await gateway.find_succeeded_payment(customer_id=customer_id, invoice_id="inv_1") is None

    # A dunning attempt's metadata names the invoice as invoice_id.
    paid = await gateway.charge_off_session(
        customer_id=customer_id,
        payment_method_id=pm_ok,
        amount=amount,
        idempotency_key="inv_1:dunning:2",
        metadata={"invoice_id": "inv_1", "dunning_attempt": "2"},
    )
    assert isinstance(paid, ChargeSucceeded)
    found = await gateway.find_succeeded_payment(customer_id=customer_id, invoice_id="inv_1")
    assert found is not None
    assert (found.id, found.status, found.amount, found.customer_id) == (
        paid.payment_intent_id,
        PaymentIntentStatus.SUCCEEDED,
        amount,
        customer_id,
    )


async def test_find_succeeded_payment_pages_through_the_customers_intents(gateway, stripe_client):
    customer_id, pm_ok = await customer_with_card(gateway, stripe_client, VISA_OK, "pages")
    amount = Money(100, "EUR")
    for n in range(105):  # more than one page of 100
        await gateway.charge_off_session(
            customer_id=customer_id,
            payment_method_id=pm_ok,
            amount=amount,
            idempotency_key=f"inv_p{n}:attempt:1",
            metadata={"dunwell_invoice_id": f"inv_p{n}"},
        )
    for n in (0, 104):
        found = await gateway.find_succeeded_payment(
            customer_id=customer_id, invoice_id=f"inv_p{n}"
        )
        assert found is not None and found.metadata["dunwell_invoice_id"] == f"inv_p{n}"
