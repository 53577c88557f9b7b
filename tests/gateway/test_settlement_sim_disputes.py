"""The settlement simulator's disputes: a real localstripe charge disputed, its funds
and fee withdrawn, the signed events sent, read back through the Stripe settlement
adapter; then won (funds reinstated) or lost."""

from __future__ import annotations

import time

import pytest
import stripe

from activities.settlement_stripe import StripeSettlementSource
from activities.stripe_gateway import StripeGateway
from billing.gateway import ChargeSucceeded
from billing.money import Money
from tests.gateway.test_stripe_localstripe import VISA_OK, customer_with_card
from tests.support.settlement_sim import (
    WEBHOOK_SECRET,
    call,
    running_settlement_sim,
    webhook_receiver,
)


async def test_a_dispute_withdraws_with_its_fee_and_a_win_reinstates(
    gateway: StripeGateway, stripe_client: stripe.StripeClient, localstripe: str
) -> None:
    customer, pm = await customer_with_card(gateway, stripe_client, VISA_OK, "sim-dispute")
    paid = await gateway.charge_off_session(
        customer_id=customer,
        payment_method_id=pm,
        amount=Money(4_000, "EUR"),
        idempotency_key="sim-dispute-charge",
    )
    assert isinstance(paid, ChargeSucceeded) and paid.charge_id
    with (
        webhook_receiver() as (hook_url, caught),
        running_settlement_sim(
            localstripe, webhook_url=hook_url, config={"available_after_seconds": 0}
        ) as sim,
    ):
        call(sim, "POST", "/_sim/tick", {"now": int(time.time())})
        source = StripeSettlementSource("sk_test_reader", sim)
        before = (await source.balance())["EUR"]
        opened = call(sim, "POST", "/_sim/disputes", {"charge": paid.charge_id})
        dispute = await source.dispute(opened["id"])
        assert dispute is not None
        assert (dispute.amount, dispute.currency, dispute.status) == (
            4_000,
            "EUR",
            "needs_response",
        )
        assert (dispute.charge_id, dispute.payment_intent_id) == (
            paid.charge_id,
            paid.payment_intent_id,
        )
        (withdrawn,) = dispute.balance_transactions
        assert (withdrawn.amount, withdrawn.fee, withdrawn.kind) == (-4_000, 1_500, "withdrawn")
        assert (await source.balance())["EUR"] == before - 4_000 - 1_500
        body, header = caught.deliveries[0]
        assert stripe.Webhook.construct_event(body.decode(), header, WEBHOOK_SECRET)
        assert [e["type"] for e in caught.events()] == [
            "charge.dispute.created",
            "charge.dispute.funds_withdrawn",
        ]

        call(sim, "POST", f"/_sim/disputes/{opened['id']}/close", {"outcome": "won"})
        won = await source.dispute(opened["id"])
        assert won is not None and won.status == "won" and won.closed
        assert [(t.amount, t.fee, t.kind) for t in won.balance_transactions] == [
            (-4_000, 1_500, "withdrawn"),
            (4_000, 0, "reinstated"),
        ]
        assert (await source.balance())["EUR"] == before - 1_500
        assert [e["type"] for e in caught.events()][2:] == [
            "charge.dispute.funds_reinstated",
            "charge.dispute.closed",
        ]
        # Closing it again sends nothing more; an unknown dispute is a 404.
        call(sim, "POST", f"/_sim/disputes/{opened['id']}/close", {"outcome": "lost"})
        assert len(caught.events()) == 4
        assert await source.dispute("dp_NoSuchDispute") is None


@pytest.mark.parametrize(
    ("path", "body"),
    [("/_sim/disputes", {"charge": "not-a-charge"}), ("/_sim/disputes/dp_none/close", {})],
)
def test_bad_dispute_requests_are_refused(
    localstripe: str, path: str, body: dict[str, str]
) -> None:
    import urllib.error

    with running_settlement_sim(localstripe) as sim:
        with pytest.raises(urllib.error.HTTPError) as refused:
            call(sim, "POST", path, body)
        assert refused.value.code in (400, 404)
