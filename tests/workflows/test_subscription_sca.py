"""Risk-based friction for the on-session confirmation: the subscription's own payment
history (successful payments, first payment date, no disputes) fed to
``billing.sca.challenge_decision``, table-driven from the rules in ``sca_rules.json``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from billing.money import Money
from billing.sca import RULES, Exemption, challenge_decision
from tests.workflows.harness import utc
from workflows.subscription.state import SubscriptionState

NOW = utc(2027, 6, 1)
TRUSTED = RULES.trusted_account
EUR_LOW = RULES.region_of("DE").low_value["EUR"]  # type: ignore[union-attr]


@dataclass(frozen=True)
class Row:
    name: str
    country: str
    currency: str
    payments: int  # successful payments so far, each of `paid_each`
    first_paid_days_ago: int
    paid_each: int
    amount: int
    disputes: int
    challenge: bool
    exemption: str | None


ROWS = [
    Row("new, low value", "DE", "EUR", 0, 0, 0, EUR_LOW.max_amount, 0, False, Exemption.LOW_VALUE),
    Row("new, above low value", "DE", "EUR", 0, 0, 0, EUR_LOW.max_amount + 1, 0, True, None),
    Row(
        "low value but the count since SCA is spent",
        "DE",
        "EUR",
        EUR_LOW.max_count,
        30,
        100,
        500,
        0,
        True,
        None,
    ),
    Row(
        "low value but the cumulative amount is spent",
        "DE",
        "EUR",
        2,
        30,
        EUR_LOW.max_cumulative // 2,
        500,
        0,
        True,
        None,
    ),
    Row(
        "trusted: long clean history under the TRA threshold",
        "DE",
        "EUR",
        TRUSTED.min_successful_payments,
        TRUSTED.min_days,
        4900,
        9000,
        0,
        False,
        Exemption.TRANSACTION_RISK_ANALYSIS,
    ),
    Row(
        "trusted but above every TRA tier",
        "DE",
        "EUR",
        TRUSTED.min_successful_payments,
        TRUSTED.min_days,
        4900,
        50_001,
        0,
        True,
        None,
    ),
    Row(
        "history too young to be trusted",
        "DE",
        "EUR",
        TRUSTED.min_successful_payments,
        TRUSTED.min_days - 1,
        4900,
        9000,
        0,
        True,
        None,
    ),
    Row(
        "one dispute ends the trust",
        "DE",
        "EUR",
        TRUSTED.min_successful_payments,
        TRUSTED.min_days,
        4900,
        9000,
        1,
        True,
        None,
    ),
    Row("outside the regulated regions", "US", "USD", 0, 0, 0, 90_000, 0, False, None),
    Row("UK low value", "GB", "GBP", 0, 0, 0, 2000, 0, False, Exemption.LOW_VALUE),
]


def state_after(row: Row) -> SubscriptionState:
    state = SubscriptionState(subscription_id="sub_sca", currency=row.currency)
    first = NOW - timedelta(days=row.first_paid_days_ago)
    for n in range(row.payments):
        state.record_payment(row.paid_each, first + timedelta(days=n))
    state.disputes = row.disputes
    return state


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_challenge_follows_the_subscriptions_payment_history(row: Row) -> None:
    state = state_after(row)
    history = state.payment_history()
    assert history.successful_payments == row.payments
    assert history.amount_since_sca == Money(row.payments * row.paid_each, row.currency)
    decision = challenge_decision(row.country, Money(row.amount, row.currency), history, NOW)
    assert (decision.challenge, decision.exemption) == (row.challenge, row.exemption)


def test_payment_history_starts_at_the_first_payment() -> None:
    state = SubscriptionState(subscription_id="sub_sca", currency="EUR")
    assert state.payment_history().first_successful_payment_at is None
    state.record_payment(100, NOW)
    state.record_payment(100, NOW + timedelta(days=30))
    assert state.payment_history().first_successful_payment_at == NOW
    assert state.payment_history().disputes == 0
