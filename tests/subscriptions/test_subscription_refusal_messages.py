"""What a refused plan change says: the message an API caller or ops reads, word for word,
and the field a naive time was given in."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest

from billing.catalog import Price, load_catalog
from billing.periods import Interval, NaiveDatetimeError
from billing.proration import PlanChangeRefused, RefusalCode, decide_change, prorate, round_half_up

# classify_change: '>' -> '>=' on the tiers or the monthly amounts is equivalent, since
# equal tiers and equal amounts were already decided before either comparison.

STARTER = Price(plan_id="starter", currency="EUR", amount=900, interval=Interval.MONTH)
PRO = Price(plan_id="pro", currency="EUR", amount=2900, interval=Interval.MONTH)
START, END, AT = (
    datetime(2026, 1, 1, tzinfo=UTC),
    datetime(2026, 2, 1, tzinfo=UTC),
    datetime(2026, 1, 10, tzinfo=UTC),
)


def refusal(**overrides: object) -> PlanChangeRefused:
    arguments: dict[str, object] = dict(
        old_price=STARTER, new_price=PRO, period_start=START, period_end=END, change_at=AT
    )
    arguments.update(overrides)
    with pytest.raises(PlanChangeRefused) as info:
        prorate(**arguments)  # type: ignore[arg-type]
    assert str(info.value) == info.value.message
    return info.value


def test_a_currency_change_is_refused_with_what_to_do_instead() -> None:
    refused = refusal(new_price=Price(plan_id="pro", currency="USD", amount=3200, interval="month"))
    assert refused.reason_code is RefusalCode.CURRENCY_CHANGE
    assert refused.message == (
        "a subscription cannot move from EUR to USD; "
        "cancel it and subscribe again in the new currency"
    )


def test_a_cycle_change_mid_period_names_both_cycles() -> None:
    quarterly = Price(
        plan_id="pro-q", currency="EUR", amount=8000, interval=Interval.MONTH, interval_count=3
    )
    refused = refusal(new_price=quarterly)
    assert refused.reason_code is RefusalCode.CYCLE_CHANGE_MID_PERIOD
    assert refused.message == (
        "'starter' bills every 1 month, 'pro-q' every 3 month: "
        "the change must take effect at the period boundary"
    )


def test_a_change_outside_the_period_names_the_instant_and_the_period() -> None:
    refused = refusal(change_at=END)
    assert refused.reason_code is RefusalCode.CHANGE_OUTSIDE_PERIOD
    assert refused.message == (
        "change_at 2026-02-01T00:00:00+00:00 is outside the period "
        "[2026-01-01T00:00:00+00:00, 2026-02-01T00:00:00+00:00)"
    )


def test_the_same_plan_is_refused_by_name() -> None:
    with pytest.raises(PlanChangeRefused) as info:
        decide_change(STARTER, STARTER, load_catalog())
    assert info.value.reason_code is RefusalCode.PLAN_UNCHANGED
    assert str(info.value) == info.value.message == "the subscription is already on 'starter'"


@pytest.mark.parametrize("field", ["period_start", "period_end", "change_at"])
def test_a_naive_time_is_refused_naming_its_field(field: str) -> None:
    naive = {"period_start": START, "period_end": END, "change_at": AT}[field].replace(tzinfo=None)
    with pytest.raises(NaiveDatetimeError, match=rf"^{field} must be timezone-aware"):
        prorate(
            old_price=STARTER,
            new_price=PRO,
            **{"period_start": START, "period_end": END, "change_at": AT, field: naive},
        )


def test_round_half_up_says_how_to_round_a_credit() -> None:
    with pytest.raises(
        ValueError, match=r"^round_half_up takes a non-negative value; negate after"
    ):
        round_half_up(Fraction(-1, 2))
