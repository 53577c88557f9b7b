"""Mid-cycle plan changes: which changes happen when, and what they cost to the second.

Proration. A change at ``change_at`` inside the period ``[period_start, period_end)``
produces two lines, each rounded on its own:

    seconds_remaining = period_end - change_at        (whole seconds)
    period_seconds    = period_end - period_start     (whole seconds)
    credit = -round_half_up(old_amount * seconds_remaining / period_seconds)
    charge = +round_half_up(new_amount * seconds_remaining / period_seconds)

``round_half_up`` rounds the exact rational (integer arithmetic, never floats) to the
currency's minor unit, halves going up: 0.5 -> 1, 2.5 -> 3. The credit is rounded on its
magnitude and then negated, so a credit and a charge of the same price cancel exactly.
Sub-second parts of the datetimes are dropped by whole-second floor division.

The amounts are before tax. Each line says whether its price is tax-inclusive; the tax
engine computes the tax of each line when the invoice is built, and the invoice freezes
it. The audit therefore records the pre-tax arithmetic only.

When a change takes effect (``decide_change``):

- currency changes are refused outright: a subscription bills in one currency for life;
- the same plan again is refused (``plan_unchanged``);
- upgrades take effect immediately and downgrades at period end by default
  (``ChangePolicy``); lateral changes immediately;
- a change that moves to a different interval or interval count never takes effect
  mid-cycle: one period cannot be billed on two cycles, so it waits for the period
  boundary, where the new price starts a fresh period. ``prorate`` refuses such a pair.

A trial is not billed, so a plan change while trialing swaps the price without calling
``prorate``; the trial end bills the new price.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fractions import Fraction

from billing.catalog import Catalog, Price
from billing.periods import as_utc, months_per_period, whole_seconds

ROUNDING_RULE = "round_half_up_per_line"
AUDIT_SCHEMA_VERSION = 1


class LineKind(StrEnum):
    CREDIT = "credit"
    CHARGE = "charge"


class ChangeKind(StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    LATERAL = "lateral"


class ChangeTiming(StrEnum):
    IMMEDIATELY = "immediately"
    PERIOD_END = "period_end"


class RefusalCode(StrEnum):
    PLAN_UNCHANGED = "plan_unchanged"
    CURRENCY_CHANGE = "currency_change_refused"
    CYCLE_CHANGE_MID_PERIOD = "cycle_change_mid_period"
    CHANGE_OUTSIDE_PERIOD = "change_outside_period"


class PlanChangeRefused(ValueError):
    """A plan change the rules above do not allow; ``reason_code`` is machine-readable."""

    def __init__(self, reason_code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True, slots=True)
class ChangePolicy:
    upgrade: ChangeTiming = ChangeTiming.IMMEDIATELY
    downgrade: ChangeTiming = ChangeTiming.PERIOD_END
    lateral: ChangeTiming = ChangeTiming.IMMEDIATELY

    def timing_for(self, kind: ChangeKind) -> ChangeTiming:
        return {
            ChangeKind.UPGRADE: self.upgrade,
            ChangeKind.DOWNGRADE: self.downgrade,
            ChangeKind.LATERAL: self.lateral,
        }[kind]


DEFAULT_CHANGE_POLICY = ChangePolicy()


@dataclass(frozen=True, slots=True)
class ChangeDecision:
    kind: ChangeKind
    timing: ChangeTiming
    # True when the policy asked for an immediate change but the cycle differs.
    deferred_to_boundary: bool = False


@dataclass(frozen=True, slots=True)
class ProrationLine:
    kind: LineKind
    plan_id: str
    price_amount: int
    currency: str
    amount: int  # signed minor units: credits negative
    seconds: int
    period_seconds: int
    description: str
    tax_inclusive: bool = False


@dataclass(frozen=True, slots=True)
class ProrationAudit:
    """Inputs and outputs of one proration, to be stored append-only beside the invoice."""

    change_at: datetime
    period_start: datetime
    period_end: datetime
    period_seconds: int
    seconds_used: int
    seconds_remaining: int
    currency: str
    old_plan_id: str
    new_plan_id: str
    old_price_amount: int
    new_price_amount: int
    credit_exact: Fraction
    charge_exact: Fraction
    credit_amount: int
    charge_amount: int
    net_amount: int
    rounding_rule: str = ROUNDING_RULE
    schema_version: int = AUDIT_SCHEMA_VERSION

    def to_record(self) -> dict[str, str | int]:
        """JSON-safe form: ISO 8601 UTC instants, exact rationals as ``"n/d"`` strings."""
        return {
            "schema_version": self.schema_version,
            "rounding_rule": self.rounding_rule,
            "change_at": self.change_at.isoformat(),
            "period_start": self.period_start.isoformat(),
            "period_end": self.period_end.isoformat(),
            "period_seconds": self.period_seconds,
            "seconds_used": self.seconds_used,
            "seconds_remaining": self.seconds_remaining,
            "currency": self.currency,
            "old_plan_id": self.old_plan_id,
            "new_plan_id": self.new_plan_id,
            "old_price_amount": self.old_price_amount,
            "new_price_amount": self.new_price_amount,
            "credit_exact": str(self.credit_exact),
            "charge_exact": str(self.charge_exact),
            "credit_amount": self.credit_amount,
            "charge_amount": self.charge_amount,
            "net_amount": self.net_amount,
        }


@dataclass(frozen=True, slots=True)
class ProrationResult:
    lines: tuple[ProrationLine, ...]
    audit: ProrationAudit

    @property
    def net_amount(self) -> int:
        return sum(line.amount for line in self.lines)


def round_half_up(value: Fraction) -> int:
    """Nearest integer to a non-negative rational, halves rounded up."""
    if value < 0:
        raise ValueError("round_half_up takes a non-negative value; negate after rounding")
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


def classify_change(old_price: Price, new_price: Price, catalog: Catalog) -> ChangeKind:
    """Upgrade or downgrade by tier rank; within a tier, by amount normalised per month."""
    _require_same_currency(old_price, new_price)
    old_tier, new_tier = catalog.tier(old_price.plan_id), catalog.tier(new_price.plan_id)
    if old_tier != new_tier:
        return ChangeKind.UPGRADE if new_tier > old_tier else ChangeKind.DOWNGRADE
    old_monthly = _per_month(old_price)
    new_monthly = _per_month(new_price)
    if new_monthly == old_monthly:
        return ChangeKind.LATERAL
    return ChangeKind.UPGRADE if new_monthly > old_monthly else ChangeKind.DOWNGRADE


def decide_change(
    old_price: Price,
    new_price: Price,
    catalog: Catalog,
    policy: ChangePolicy = DEFAULT_CHANGE_POLICY,
) -> ChangeDecision:
    """Whether a plan change is allowed and when it takes effect."""
    if old_price.plan_id == new_price.plan_id:
        raise PlanChangeRefused(
            RefusalCode.PLAN_UNCHANGED, f"the subscription is already on {old_price.plan_id!r}"
        )
    kind = classify_change(old_price, new_price, catalog)
    timing = policy.timing_for(kind)
    if timing is ChangeTiming.IMMEDIATELY and not old_price.same_cycle(new_price):
        return ChangeDecision(kind=kind, timing=ChangeTiming.PERIOD_END, deferred_to_boundary=True)
    return ChangeDecision(kind=kind, timing=timing)


def require_mid_cycle_change_allowed(old_price: Price, new_price: Price) -> None:
    """Refuse a pair of prices that cannot share one billing period."""
    _require_same_currency(old_price, new_price)
    if not old_price.same_cycle(new_price):
        raise PlanChangeRefused(
            RefusalCode.CYCLE_CHANGE_MID_PERIOD,
            f"{old_price.plan_id!r} bills every {old_price.interval_count} "
            f"{old_price.interval}, {new_price.plan_id!r} every {new_price.interval_count} "
            f"{new_price.interval}: the change must take effect at the period boundary",
        )


def prorate(
    *,
    old_price: Price,
    new_price: Price,
    period_start: datetime,
    period_end: datetime,
    change_at: datetime,
) -> ProrationResult:
    """Credit for the unused time on the old price and charge for it on the new one."""
    require_mid_cycle_change_allowed(old_price, new_price)
    start = as_utc(period_start, "period_start")
    end = as_utc(period_end, "period_end")
    at = as_utc(change_at, "change_at")
    if not start <= at < end:
        raise PlanChangeRefused(
            RefusalCode.CHANGE_OUTSIDE_PERIOD,
            f"change_at {at.isoformat()} is outside the period "
            f"[{start.isoformat()}, {end.isoformat()})",
        )
    period_seconds = whole_seconds(end - start)
    remaining = whole_seconds(end - at)
    credit_exact = Fraction(old_price.amount * remaining, period_seconds)
    charge_exact = Fraction(new_price.amount * remaining, period_seconds)
    credit = -round_half_up(credit_exact)
    charge = round_half_up(charge_exact)
    span = f"from {_stamp(at)} to {_stamp(end)}"
    lines = (
        ProrationLine(
            kind=LineKind.CREDIT,
            plan_id=old_price.plan_id,
            price_amount=old_price.amount,
            currency=old_price.currency,
            amount=credit,
            seconds=remaining,
            period_seconds=period_seconds,
            description=f"Unused time on {old_price.plan_id} {span}",
            tax_inclusive=old_price.tax_inclusive,
        ),
        ProrationLine(
            kind=LineKind.CHARGE,
            plan_id=new_price.plan_id,
            price_amount=new_price.amount,
            currency=new_price.currency,
            amount=charge,
            seconds=remaining,
            period_seconds=period_seconds,
            description=f"Remaining time on {new_price.plan_id} {span}",
            tax_inclusive=new_price.tax_inclusive,
        ),
    )
    audit = ProrationAudit(
        change_at=at,
        period_start=start,
        period_end=end,
        period_seconds=period_seconds,
        seconds_used=period_seconds - remaining,
        seconds_remaining=remaining,
        currency=old_price.currency,
        old_plan_id=old_price.plan_id,
        new_plan_id=new_price.plan_id,
        old_price_amount=old_price.amount,
        new_price_amount=new_price.amount,
        credit_exact=-credit_exact,
        charge_exact=charge_exact,
        credit_amount=credit,
        charge_amount=charge,
        net_amount=credit + charge,
    )
    return ProrationResult(lines=lines, audit=audit)


def _require_same_currency(old_price: Price, new_price: Price) -> None:
    if old_price.currency != new_price.currency:
        raise PlanChangeRefused(
            RefusalCode.CURRENCY_CHANGE,
            f"a subscription cannot move from {old_price.currency} to {new_price.currency}; "
            "cancel it and subscribe again in the new currency",
        )


def _per_month(price: Price) -> Fraction:
    return Fraction(price.amount, months_per_period(price.interval, price.interval_count))


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
