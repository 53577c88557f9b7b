"""The settlement simulator on localstripe's real charges and refunds, read through the
Stripe settlement adapter: fees by the schedule, conversion, availability, automatic
payouts, their signed events, a payout failure and a fee with no source."""

from __future__ import annotations

import time

import pytest
import stripe

from activities.gateway_rate import SharedRateLimit
from activities.settlement_stripe import StripeSettlementSource
from activities.stripe_gateway import StripeGateway
from billing.gateway import ChargeSucceeded, InvalidGatewayRequest
from billing.money import Money
from billing.reconciliation.matcher import match_transactions
from billing.reconciliation.model import LedgerKind, LedgerRecord, SettlementTxn
from billing.reconciliation.tolerances import load_tolerances
from tests.gateway.test_stripe_localstripe import VISA_OK, customer_with_card
from tests.support.settlement_sim import (
    WEBHOOK_SECRET,
    call,
    running_settlement_sim,
    webhook_receiver,
)

DAY = 86_400


async def _charge(
    gateway: StripeGateway, customer: str, pm: str, amount: Money, key: str
) -> ChargeSucceeded:
    outcome = await gateway.charge_off_session(
        customer_id=customer,
        payment_method_id=pm,
        amount=amount,
        idempotency_key=key,
        metadata={"invoice_id": key},
    )
    assert isinstance(outcome, ChargeSucceeded)
    return outcome


async def _all(source: StripeSettlementSource, payout_id: str) -> list[SettlementTxn]:
    txns: list[SettlementTxn] = []
    cursor = None
    while True:
        page = await source.payout_transactions(payout_id, starting_after=cursor, limit=2)
        txns.extend(page.items)
        if not page.has_more:
            return txns
        cursor = page.next_cursor


async def test_charges_and_refunds_settle_into_a_paid_payout(
    gateway: StripeGateway, stripe_client: stripe.StripeClient, localstripe: str
) -> None:
    customer, pm = await customer_with_card(gateway, stripe_client, VISA_OK, "sim")
    big = await _charge(gateway, customer, pm, Money(10_000, "EUR"), "inv_a")
    small = await _charge(gateway, customer, pm, Money(2_500, "EUR"), "inv_b")
    dollars = await _charge(gateway, customer, pm, Money(5_000, "USD"), "inv_c")
    refund = await gateway.create_refund(
        payment_intent_id=small.payment_intent_id, amount=Money(1_000, "EUR"), idempotency_key="r"
    )
    now = int(time.time())
    with (
        webhook_receiver() as (hook_url, caught),
        running_settlement_sim(localstripe, webhook_url=hook_url) as sim,
    ):
        source = StripeSettlementSource("sk_test_reader", sim)
        assert call(sim, "POST", "/_sim/tick", {"now": now})["payouts"] == []
        assert await source.balance() == {"EUR": 10_000 - 175 + 2_500 - 63 + 4_600 - 140 - 1_000}

        ticked = call(sim, "POST", "/_sim/tick", {"now": now + 3 * DAY})
        (payout_id,) = ticked["payouts"]
        assert ticked["paid"] == [payout_id]
        payout = await source.payout(payout_id)
        assert (payout.status, payout.currency) == ("paid", "EUR")
        assert payout.amount == 10_000 - 175 + 2_500 - 63 + 4_600 - 140 - 1_000
        assert await source.balance() == {"EUR": 0}

        txns = await _all(source, payout_id)
        by_ref = {t.ledger_ref: t for t in txns if t.ledger_ref}
        assert len(txns) == 5 and len({t.id for t in txns}) == 5
        assert [t.type for t in txns if t.id == payout.balance_transaction] == ["payout"]
        eur = by_ref[big.payment_intent_id]
        assert (eur.amount, eur.fee, eur.net, eur.card_country, eur.source) == (
            10_000, 175, 9_825, "FR", big.charge_id,
        )  # fmt: skip
        usd = by_ref[dollars.payment_intent_id]
        assert (usd.amount, usd.currency, usd.fee, usd.source_amount, usd.source_currency) == (
            4_600, "EUR", 140, 5_000, "USD",
        )  # fmt: skip
        assert usd.exchange_rate == "0.92"
        assert usd.fee_details == (("stripe_fee", 140),)
        back = by_ref[refund.id]
        assert (back.type, back.amount, back.fee, back.source_amount) == (
            "refund",
            -1_000,
            0,
            1_000,
        )

        # The simulator's fee schedule is the one the matcher expects.
        ledger = {
            ref: [LedgerRecord(
                LedgerKind.REFUND if ref == refund.id else LedgerKind.PAYMENT, ref,
                t.source_amount or 0, t.source_currency or "", 1, t.created,
            )]
            for ref, t in by_ref.items()
        }  # fmt: skip
        result = match_transactions(txns, ledger, load_tolerances(1))
        assert result.findings == [] and result.matched == 5

        (event,) = caught.events()
        body, header = caught.deliveries[0]
        verified = stripe.Webhook.construct_event(body.decode(), header, WEBHOOK_SECRET)
        assert (verified["type"], event["data"]["object"]["id"]) == ("payout.paid", payout_id)

        # The bank returns the payout; the money comes back and leaves with the next one,
        # less a fee with no source.
        call(sim, "POST", f"/_sim/payouts/{payout_id}/fail", {"failure_code": "account_closed"})
        failed = await source.payout(payout_id)
        assert (failed.status, failed.failure_code) == ("failed", "account_closed")
        assert failed.failure_balance_transaction
        assert [e["type"] for e in caught.events()] == ["payout.paid", "payout.failed"]
        call(sim, "POST", "/_sim/fees", {"id": "fee_1", "amount": 300, "description": "account"})
        (next_id,) = call(sim, "POST", "/_sim/tick", {"now": now + 4 * DAY})["payouts"]
        again = await _all(source, next_id)
        kinds = sorted((t.type, t.source is None) for t in again)
        assert kinds == [("payout", False), ("payout_failure", False), ("stripe_fee", True)]
        assert (await source.payout(next_id)).amount == payout.amount - 300


async def test_unknown_payout_is_an_invalid_request(localstripe: str) -> None:
    with running_settlement_sim(localstripe) as sim:
        source = StripeSettlementSource("sk_test_reader", sim)
        with pytest.raises(InvalidGatewayRequest):
            await source.payout("po_missing")
        with pytest.raises(InvalidGatewayRequest):
            await source.payout_transactions("po_missing")


async def test_each_settlement_read_waits_for_the_shared_rate_limit(localstripe: str) -> None:
    taken: list[int] = []

    def take(second: int, want: int, limit: int) -> int:
        taken.append(want)
        return want

    limit = SharedRateLimit(take, 10, batch=1)
    with running_settlement_sim(localstripe) as sim:
        source = StripeSettlementSource(
            "sk_test_reader", sim, gateway_base=localstripe, rate_limit=limit
        )
        await source.balance()
        with pytest.raises(InvalidGatewayRequest):
            await source.payout("po_missing")
        assert await source.payment("pi_missing") is None
    assert len(taken) == 3
