"""SCA routing rules, table-driven against the shipped rule data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest

from billing.money import Money
from billing.sca import RULES, Decision, PaymentHistory, challenge_decision, setup_requires_3ds

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NEW = PaymentHistory()
TRUSTED = PaymentHistory(
    successful_payments=12, first_successful_payment_at=NOW - timedelta(days=400), disputes=0
)


def eur(cents):
    return Money(cents, "EUR")


def gbp(pence):
    return Money(pence, "GBP")


@pytest.mark.parametrize(
    ("country", "expected"),
    [("DE", True), ("fr", True), ("NO", True), ("IS", True), ("LI", True), ("GB", True),
     ("IN", True), ("US", False), ("CH", False), ("AU", False), ("JP", False)],
)  # fmt: skip
def test_setup_requires_3ds(country, expected):
    assert setup_requires_3ds(country) is expected


def test_eea_lists_all_thirty_members_with_sources():
    raw = json.loads(resources.files("billing.data").joinpath("sca_rules.json").read_text())
    assert len(raw["regions"]["EEA"]["countries"]) == 30
    assert all(raw["sources"].values())
    assert RULES.region_of("gr") is not None and RULES.region_of("EL") is None


CASES = [
    # id, country, amount, history, merchant_initiated, (challenge, exemption, reason)
    ("outside regulation", "US", Money(99_999, "USD"), NEW, False, (False, None, "not_regulated")),
    ("eea low value", "DE", eur(2999), NEW, False, (False, "low_value", "low_value")),
    ("eea low value at limit", "FR", eur(3000), NEW, False, (False, "low_value", "low_value")),
    ("eea just above low value", "FR", eur(3001), NEW, False, (True, None, "sca_required")),
    ("eea cumulative would pass 100", "IT",
     eur(2500), PaymentHistory(payments_since_sca=3, amount_since_sca=eur(8000)), False,
     (True, None, "sca_required")),
    ("eea cumulative exactly 100", "IT",
     eur(2000), PaymentHistory(payments_since_sca=3, amount_since_sca=eur(8000)), False,
     (False, "low_value", "low_value")),
    ("eea sixth payment since sca", "ES",
     eur(100), PaymentHistory(payments_since_sca=5, amount_since_sca=eur(500)), False,
     (True, None, "sca_required")),
    ("eea fifth payment since sca", "ES",
     eur(100), PaymentHistory(payments_since_sca=4, amount_since_sca=eur(400)), False,
     (False, "low_value", "low_value")),
    ("eea low amount in SEK: not in the table", "SE", Money(1000, "SEK"), NEW, False,
     (True, None, "sca_required")),
    ("eea history in another currency", "NL",
     eur(500), PaymentHistory(payments_since_sca=1, amount_since_sca=gbp(500)), False,
     (True, None, "sca_required")),
    ("uk low value", "GB", gbp(2500), NEW, False, (False, "low_value", "low_value")),
    ("uk above 25", "GB", gbp(2501), NEW, False, (True, None, "sca_required")),
    ("uk cumulative 85", "GB",
     gbp(2000), PaymentHistory(payments_since_sca=3, amount_since_sca=gbp(6600)), False,
     (True, None, "sca_required")),
    ("uk low amount in EUR: not in the table", "GB", eur(1000), NEW, False,
     (True, None, "sca_required")),
    ("eea trusted under TRA 250 (6 bps)", "DE", eur(25000), TRUSTED, False,
     (False, "transaction_risk_analysis", "trusted_account")),
    ("eea trusted above TRA 250", "DE", eur(25001), TRUSTED, False,
     (True, None, "above_tra_threshold")),
    ("uk trusted under TRA 220", "GB", gbp(22000), TRUSTED, False,
     (False, "transaction_risk_analysis", "trusted_account")),
    ("uk trusted above TRA 220", "GB", gbp(22001), TRUSTED, False,
     (True, None, "above_tra_threshold")),
    ("eea trusted but SEK has no TRA table", "SE", Money(50000, "SEK"), TRUSTED, False,
     (True, None, "no_tra_threshold")),
    ("too young to be trusted", "DE", eur(5000),
     PaymentHistory(successful_payments=12, first_successful_payment_at=NOW - timedelta(days=179)),
     False, (True, None, "sca_required")),
    ("too few payments to be trusted", "DE", eur(5000),
     PaymentHistory(successful_payments=5, first_successful_payment_at=NOW - timedelta(days=900)),
     False, (True, None, "sca_required")),
    ("a dispute ends trust", "DE", eur(5000),
     PaymentHistory(successful_payments=50, first_successful_payment_at=NOW - timedelta(days=900),
                    disputes=1), False, (True, None, "sca_required")),
    ("eea renewal on an SCA mandate", "DE", eur(99_900),
     PaymentHistory(last_sca_at=NOW - timedelta(days=30)), True,
     (False, "merchant_initiated", "mandate_set_up_with_sca")),
    ("eea renewal without SCA mandate", "DE", eur(990), NEW, True,
     (True, None, "mandate_without_sca")),
    ("india e-mandate debit at limit", "IN", Money(1_500_000, "INR"),
     PaymentHistory(e_mandate_registered=True), True, (False, "e_mandate", "registered_e_mandate")),
    ("india e-mandate debit above limit", "IN", Money(1_500_001, "INR"),
     PaymentHistory(e_mandate_registered=True), True, (True, None, "above_e_mandate_limit")),
    ("india debit without mandate", "IN", Money(10_000, "INR"), NEW, True,
     (True, None, "e_mandate_not_registered")),
    ("india debit in USD", "IN", Money(1000, "USD"),
     PaymentHistory(e_mandate_registered=True), True, (True, None, "above_e_mandate_limit")),
    ("india customer-initiated", "IN", Money(10_000, "INR"),
     PaymentHistory(e_mandate_registered=True), False, (True, None, "afa_required")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("country", "amount", "history", "merchant_initiated", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_challenge_decision(country, amount, history, merchant_initiated, expected):
    decision = challenge_decision(
        country, amount, history, NOW, merchant_initiated=merchant_initiated
    )
    assert decision == Decision(*expected)


@pytest.mark.parametrize(
    ("fraud_rate_bps", "amount", "challenge"),
    [(13, eur(10000), False), (13, eur(10001), True), (6, eur(25000), False),
     (1, eur(50000), False), (1, eur(50001), True), (14, eur(5000), True)],
)  # fmt: skip
def test_tra_threshold_follows_the_acquirer_fraud_rate(fraud_rate_bps, amount, challenge):
    decision = challenge_decision(
        "AT", amount, TRUSTED, NOW, acquirer_fraud_rate_bps=fraud_rate_bps
    )
    assert decision.challenge is challenge


def test_naive_now_is_refused():
    with pytest.raises(ValueError):
        challenge_decision("DE", eur(100), NEW, datetime(2026, 1, 1))
