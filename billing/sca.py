"""Strong customer authentication: where it applies and when to ask for a challenge.

The regulated regions (EEA and UK under PSD2 and its UK copy, India under the RBI's
additional factor of authentication) and every threshold live in ``data/sca_rules.json``
with their sources. The issuer has the last word: a requested exemption can still be
answered with ``authentication_required``; these rules decide only what Dunwell asks for.

``challenge_decision``, in order:

1. outside a regulated region: no challenge;
2. India: every customer-initiated payment is authenticated; a merchant-initiated debit
   on a registered e-mandate up to the limit needs no authentication;
3. merchant-initiated on a mandate set up with SCA (renewals): out of SCA's scope;
4. low value: the amount and the payments since the last SCA within the limits;
5. trusted account: a long clean history asks for the transaction risk analysis
   exemption, up to the TRA threshold the acquirer's fraud rate allows;
6. otherwise: challenge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

from billing.money import Money


@dataclass(frozen=True, slots=True)
class LowValueLimit:
    max_amount: int
    max_cumulative: int
    max_count: int


@dataclass(frozen=True, slots=True)
class TraTier:
    max_amount: int
    max_fraud_rate_bps: int


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    countries: frozenset[str]
    setup_requires_3ds: bool
    low_value: dict[str, LowValueLimit]
    tra: dict[str, tuple[TraTier, ...]]
    e_mandate_limit: dict[str, int]


@dataclass(frozen=True, slots=True)
class TrustedAccountRule:
    min_successful_payments: int
    min_days: int
    max_disputes: int


@dataclass(frozen=True, slots=True)
class ScaRules:
    regions: tuple[Region, ...]
    trusted_account: TrustedAccountRule
    acquirer_fraud_rate_bps: int

    def region_of(self, country: str) -> Region | None:
        code = country.upper()
        return next((r for r in self.regions if code in r.countries), None)


@dataclass(frozen=True, slots=True)
class PaymentHistory:
    """What Dunwell knows of this customer's card payments (from its own ledger)."""

    successful_payments: int = 0
    first_successful_payment_at: datetime | None = None
    disputes: int = 0
    last_sca_at: datetime | None = None
    # Payments made without SCA since the last SCA, and their total.
    payments_since_sca: int = 0
    amount_since_sca: Money | None = None
    e_mandate_registered: bool = False


@dataclass(frozen=True, slots=True)
class Decision:
    challenge: bool
    exemption: str | None
    reason: str


class Exemption:
    MERCHANT_INITIATED = "merchant_initiated"
    E_MANDATE = "e_mandate"
    LOW_VALUE = "low_value"
    TRANSACTION_RISK_ANALYSIS = "transaction_risk_analysis"


def load_rules(raw: dict[str, Any]) -> ScaRules:
    regions = tuple(
        Region(
            name=name,
            countries=frozenset(spec["countries"]),
            setup_requires_3ds=bool(spec["setup_requires_3ds"]),
            low_value={cur: LowValueLimit(**limit) for cur, limit in spec["low_value"].items()},
            tra={
                cur: tuple(sorted((TraTier(**t) for t in tiers), key=lambda t: t.max_amount))
                for cur, tiers in spec["tra"].items()
            },
            e_mandate_limit={cur: v["max_amount"] for cur, v in spec["e_mandate"].items()},
        )
        for name, spec in raw["regions"].items()
    )
    return ScaRules(
        regions=regions,
        trusted_account=TrustedAccountRule(**raw["trusted_account"]),
        acquirer_fraud_rate_bps=int(raw["acquirer_fraud_rate_bps"]),
    )


RULES = load_rules(
    json.loads(resources.files("billing.data").joinpath("sca_rules.json").read_text())
)


def setup_requires_3ds(country: str, rules: ScaRules = RULES) -> bool:
    """Whether saving a card for this country should run 3-D Secure up front."""
    region = rules.region_of(country)
    return region is not None and region.setup_requires_3ds


def challenge_decision(
    country: str,
    amount: Money,
    history: PaymentHistory,
    now: datetime,
    *,
    merchant_initiated: bool = False,
    acquirer_fraud_rate_bps: int | None = None,
    rules: ScaRules = RULES,
) -> Decision:
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    region = rules.region_of(country)
    if region is None:
        return Decision(False, None, "not_regulated")
    if region.e_mandate_limit:
        return _e_mandate(region, amount, history, merchant_initiated=merchant_initiated)
    if merchant_initiated:
        if history.last_sca_at is not None:
            return Decision(False, Exemption.MERCHANT_INITIATED, "mandate_set_up_with_sca")
        return Decision(True, None, "mandate_without_sca")
    low_value = _low_value(region, amount, history)
    if low_value is not None:
        return low_value
    rate = (
        rules.acquirer_fraud_rate_bps
        if acquirer_fraud_rate_bps is None
        else acquirer_fraud_rate_bps
    )
    if _trusted(rules.trusted_account, history, now):
        ceiling = _tra_ceiling(region, amount.currency, rate)
        if ceiling is None:
            return Decision(True, None, "no_tra_threshold")
        if amount.amount <= ceiling:
            return Decision(False, Exemption.TRANSACTION_RISK_ANALYSIS, "trusted_account")
        return Decision(True, None, "above_tra_threshold")
    return Decision(True, None, "sca_required")


def _e_mandate(
    region: Region, amount: Money, history: PaymentHistory, *, merchant_initiated: bool
) -> Decision:
    limit = region.e_mandate_limit.get(amount.currency)
    if not merchant_initiated:
        return Decision(True, None, "afa_required")
    if not history.e_mandate_registered:
        return Decision(True, None, "e_mandate_not_registered")
    if limit is None or amount.amount > limit:
        return Decision(True, None, "above_e_mandate_limit")
    return Decision(False, Exemption.E_MANDATE, "registered_e_mandate")


def _low_value(region: Region, amount: Money, history: PaymentHistory) -> Decision | None:
    """The low-value exemption, or None to try the next rule.

    The issuer keeps the counters and may apply either the amount or the count limit;
    Dunwell cannot know which, so it asks only when both would still hold after this payment.
    """
    limit = region.low_value.get(amount.currency)
    if limit is None or amount.amount > limit.max_amount:
        return None
    spent = history.amount_since_sca
    if spent is not None and spent.currency != amount.currency:
        return None  # cannot compare without an exchange rate
    spent_amount = spent.amount if spent is not None else 0
    if history.payments_since_sca >= limit.max_count:
        return None
    if spent_amount + amount.amount > limit.max_cumulative:
        return None
    return Decision(False, Exemption.LOW_VALUE, "low_value")


def _trusted(rule: TrustedAccountRule, history: PaymentHistory, now: datetime) -> bool:
    first = history.first_successful_payment_at
    return (
        history.successful_payments >= rule.min_successful_payments
        and history.disputes <= rule.max_disputes
        and first is not None
        and now - first >= timedelta(days=rule.min_days)
    )


def _tra_ceiling(region: Region, currency: str, fraud_rate_bps: int) -> int | None:
    """The highest TRA threshold the acquirer's fraud rate qualifies for."""
    allowed = [
        tier.max_amount
        for tier in region.tra.get(currency, ())
        if fraud_rate_bps <= tier.max_fraud_rate_bps
    ]
    return max(allowed) if allowed else None
