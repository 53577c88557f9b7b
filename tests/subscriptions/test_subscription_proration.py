"""Proration amounts are worked out by hand in the comments beside each case.

``credit = -round_half_up(old * remaining / period)``, ``charge = round_half_up(new * ...)``.
"""

import json
from datetime import UTC, datetime
from fractions import Fraction

import pytest

from billing.catalog import Catalog, Plan, Price, load_catalog
from billing.periods import Interval, NaiveDatetimeError
from billing.proration import (
    ROUNDING_RULE,
    ChangeDecision,
    ChangeKind,
    ChangePolicy,
    ChangeTiming,
    LineKind,
    PlanChangeRefused,
    RefusalCode,
    classify_change,
    decide_change,
    prorate,
    round_half_up,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def monthly(plan_id: str, amount: int, currency: str = "EUR") -> Price:
    return Price(plan_id=plan_id, currency=currency, amount=amount, interval=Interval.MONTH)


def yearly(plan_id: str, amount: int, currency: str = "EUR") -> Price:
    return Price(plan_id=plan_id, currency=currency, amount=amount, interval=Interval.YEAR)


def amounts(old: Price, new: Price, start: datetime, end: datetime, at: datetime):
    result = prorate(old_price=old, new_price=new, period_start=start, period_end=end, change_at=at)
    credit, charge = result.lines
    assert (credit.kind, charge.kind) == (LineKind.CREDIT, LineKind.CHARGE)
    return credit.amount, charge.amount, result.net_amount


STARTER, PRO = monthly("starter", 900), monthly("pro", 2900)


def test_upgrade_in_a_31_day_month() -> None:
    # Jan 2026: 31 days. Change Jan 10 00:00 -> 22 days remain.
    # credit 900*22/31 = 19800/31 = 638.71 -> 639; charge 2900*22/31 = 63800/31 = 2058.06 -> 2058
    assert amounts(STARTER, PRO, utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 1, 10)) == (
        -639,
        2058,
        1419,
    )


def test_downgrade_in_a_31_day_month() -> None:
    # Jan 20 12:00 -> 11.5 of 31 days remain.
    # credit 2900*11.5/31 = 33350/31 = 1075.81 -> 1076; charge 900*11.5/31 = 10350/31 = 333.87 -> 334
    assert amounts(PRO, STARTER, utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 1, 20, 12)) == (
        -1076,
        334,
        -742,
    )


def test_halves_round_up_in_a_28_day_month() -> None:
    # Feb 2026: 28 days. Change Feb 15 00:00 -> exactly half the period remains.
    # credit 999/2 = 499.5 -> 500; charge 2999/2 = 1499.5 -> 1500
    old, new = monthly("a", 999), monthly("b", 2999)
    assert amounts(old, new, utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 2, 15)) == (
        -500,
        1500,
        1000,
    )


def test_downgrade_in_a_28_day_month() -> None:
    # Feb 10 06:00 -> 18.75 of 28 days remain.
    # credit 2900*18.75/28 = 54375/28 = 1941.96 -> 1942; charge 900*18.75/28 = 16875/28 = 602.68 -> 603
    assert amounts(PRO, STARTER, utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 2, 10, 6)) == (
        -1942,
        603,
        -1339,
    )


def test_upgrade_in_leap_february() -> None:
    # Feb 2028: 29 days. Change Feb 15 00:00 -> 15 days remain.
    # credit 900*15/29 = 13500/29 = 465.52 -> 466; charge 2900*15/29 = 1500 exactly
    assert amounts(STARTER, PRO, utc(2028, 2, 1), utc(2028, 3, 1), utc(2028, 2, 15)) == (
        -466,
        1500,
        1034,
    )


def test_yearly_upgrade_across_a_leap_year() -> None:
    # Period 2027-06-01 .. 2028-06-01 holds Feb 29 2028: 366 days. Change Mar 1 2028 ->
    # 31 + 30 + 31 = 92 days remain.
    # credit 9000*92/366 = 828000/366 = 2262.30 -> 2262
    # charge 29000*92/366 = 2668000/366 = 7289.62 -> 7290
    old, new = yearly("starter-y", 9000), yearly("pro-y", 29000)
    result = prorate(
        old_price=old,
        new_price=new,
        period_start=utc(2027, 6, 1),
        period_end=utc(2028, 6, 1),
        change_at=utc(2028, 3, 1),
    )
    assert [line.amount for line in result.lines] == [-2262, 7290]
    assert result.audit.period_seconds == 31_622_400
    assert result.audit.seconds_remaining == 7_948_800
    assert result.audit.seconds_used == 31_622_400 - 7_948_800


def test_jpy_rounds_to_whole_yen() -> None:
    # JPY has no minor unit. Jan 10 -> 22/31 remain.
    # credit 1500*22/31 = 33000/31 = 1064.52 -> 1065; charge 4800*22/31 = 105600/31 = 3406.45 -> 3406
    old, new = monthly("s", 1500, "JPY"), monthly("p", 4800, "JPY")
    assert amounts(old, new, utc(2026, 1, 1), utc(2026, 2, 1), utc(2026, 1, 10)) == (
        -1065,
        3406,
        2341,
    )
    # half a period of 1001 yen = 500.5 -> 501
    odd = monthly("o", 1001, "JPY")
    assert amounts(odd, odd, utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 2, 15))[:2] == (-501, 501)


def test_kwd_rounds_to_the_fils() -> None:
    # KWD has three decimals: 2.750 KWD -> 9.990 KWD, Jan 10 -> 22/31 remain.
    # credit 2750*22/31 = 60500/31 = 1951.61 -> 1952; charge 9990*22/31 = 219780/31 = 7089.68 -> 7090
    old, new = monthly("s", 2750, "KWD"), monthly("p", 9990, "KWD")
    result = prorate(
        old_price=old,
        new_price=new,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=utc(2026, 1, 10),
    )
    assert [(line.amount, line.currency) for line in result.lines] == [
        (-1952, "KWD"),
        (7090, "KWD"),
    ]
    assert result.audit.net_amount == 5138


def test_change_at_the_exact_period_start_swaps_whole_prices() -> None:
    result = prorate(
        old_price=STARTER,
        new_price=PRO,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=utc(2026, 1, 1),
    )
    assert [line.amount for line in result.lines] == [-900, 2900]
    assert (result.audit.seconds_used, result.audit.seconds_remaining) == (0, 2_678_400)


def test_change_one_second_before_the_end() -> None:
    # 1 of 2,678,400 seconds remains: 900/2678400 rounds to 0 on both lines.
    at = utc(2026, 1, 31, 23, 59, 59)
    assert amounts(STARTER, PRO, utc(2026, 1, 1), utc(2026, 2, 1), at) == (0, 0, 0)
    # Prices of 1.5x and 0.5x the period's seconds: 1.5 -> 2 and 0.5 -> 1.
    big_old, big_new = monthly("x", 1_339_200), monthly("y", 4_017_600)
    assert amounts(big_old, big_new, utc(2026, 1, 1), utc(2026, 2, 1), at) == (-1, 2, 1)


def test_sub_second_parts_are_dropped_by_floor() -> None:
    # 0.4 s before the end is 0 whole seconds remaining; 1.2 s is 1.
    just_before = datetime(2026, 1, 31, 23, 59, 59, 600_000, tzinfo=UTC)
    result = prorate(
        old_price=STARTER,
        new_price=PRO,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=just_before,
    )
    assert result.audit.seconds_remaining == 0
    earlier = datetime(2026, 1, 31, 23, 59, 58, 800_000, tzinfo=UTC)
    result = prorate(
        old_price=STARTER,
        new_price=PRO,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=earlier,
    )
    assert result.audit.seconds_remaining == 1


def test_lines_and_audit_record_inputs_and_outputs() -> None:
    taxed = Price(
        plan_id="pro",
        currency="EUR",
        amount=2900,
        interval=Interval.MONTH,
        tax_inclusive=True,
    )
    result = prorate(
        old_price=STARTER,
        new_price=taxed,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=utc(2026, 1, 10),
    )
    credit, charge = result.lines
    assert (credit.plan_id, credit.price_amount, credit.seconds, credit.period_seconds) == (
        "starter",
        900,
        1_900_800,
        2_678_400,
    )
    assert (credit.tax_inclusive, charge.tax_inclusive) == (False, True)
    assert credit.description == (
        "Unused time on starter from 2026-01-10 00:00:00 UTC to 2026-02-01 00:00:00 UTC"
    )
    assert charge.description.startswith("Remaining time on pro from 2026-01-10")
    record = json.loads(json.dumps(result.audit.to_record()))
    assert record == {
        "schema_version": 1,
        "rounding_rule": ROUNDING_RULE,
        "change_at": "2026-01-10T00:00:00+00:00",
        "period_start": "2026-01-01T00:00:00+00:00",
        "period_end": "2026-02-01T00:00:00+00:00",
        "period_seconds": 2_678_400,
        "seconds_used": 777_600,
        "seconds_remaining": 1_900_800,
        "currency": "EUR",
        "old_plan_id": "starter",
        "new_plan_id": "pro",
        "old_price_amount": 900,
        "new_price_amount": 2900,
        "credit_exact": "-19800/31",
        "charge_exact": "63800/31",
        "credit_amount": -639,
        "charge_amount": 2058,
        "net_amount": 1419,
    }
    assert result.audit.credit_exact == Fraction(-19800, 31)


@pytest.mark.parametrize(("old_inclusive", "new_inclusive"), [(True, False), (True, True)])
def test_credit_line_keeps_the_old_prices_tax_inclusion(
    old_inclusive: bool, new_inclusive: bool
) -> None:
    # The credit gives back what was charged: gross of tax when the old price was.
    old = Price(
        plan_id="starter",
        currency="EUR",
        amount=900,
        interval=Interval.MONTH,
        tax_inclusive=old_inclusive,
    )
    new = Price(
        plan_id="pro",
        currency="EUR",
        amount=2900,
        interval=Interval.MONTH,
        tax_inclusive=new_inclusive,
    )
    result = prorate(
        old_price=old,
        new_price=new,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=utc(2026, 1, 10),
    )
    credit, charge = result.lines
    assert (credit.tax_inclusive, charge.tax_inclusive) == (old_inclusive, new_inclusive)
    assert (credit.amount, charge.amount) == (-639, 2058)


def test_result_survives_the_temporal_pydantic_converter() -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    from billing.proration import ProrationResult

    result = prorate(
        old_price=STARTER,
        new_price=PRO,
        period_start=utc(2026, 1, 1),
        period_end=utc(2026, 2, 1),
        change_at=utc(2026, 1, 10, 7, 3, 11),
    )
    converter = pydantic_data_converter.payload_converter
    catalog = load_catalog()
    (back, back_catalog) = converter.from_payloads(
        converter.to_payloads([result, catalog]), [ProrationResult, Catalog]
    )
    assert back == result
    assert back_catalog == catalog


@pytest.mark.parametrize(
    ("at", "code"),
    [
        (utc(2026, 2, 1), RefusalCode.CHANGE_OUTSIDE_PERIOD),
        (utc(2025, 12, 31, 23, 59, 59), RefusalCode.CHANGE_OUTSIDE_PERIOD),
    ],
)
def test_prorate_refuses_a_change_outside_the_period(at: datetime, code: RefusalCode) -> None:
    with pytest.raises(PlanChangeRefused) as info:
        prorate(
            old_price=STARTER,
            new_price=PRO,
            period_start=utc(2026, 1, 1),
            period_end=utc(2026, 2, 1),
            change_at=at,
        )
    assert info.value.reason_code is code


def test_prorate_refuses_cycle_and_currency_changes_and_naive_times() -> None:
    with pytest.raises(PlanChangeRefused) as info:
        prorate(
            old_price=STARTER,
            new_price=yearly("pro-y", 29000),
            period_start=utc(2026, 1, 1),
            period_end=utc(2026, 2, 1),
            change_at=utc(2026, 1, 10),
        )
    assert info.value.reason_code is RefusalCode.CYCLE_CHANGE_MID_PERIOD
    quarterly = Price(
        plan_id="pro-q", currency="EUR", amount=8000, interval=Interval.MONTH, interval_count=3
    )
    with pytest.raises(PlanChangeRefused) as info:
        prorate(
            old_price=STARTER,
            new_price=quarterly,
            period_start=utc(2026, 1, 1),
            period_end=utc(2026, 2, 1),
            change_at=utc(2026, 1, 10),
        )
    assert info.value.reason_code is RefusalCode.CYCLE_CHANGE_MID_PERIOD
    with pytest.raises(PlanChangeRefused) as info:
        prorate(
            old_price=STARTER,
            new_price=monthly("pro", 3200, "USD"),
            period_start=utc(2026, 1, 1),
            period_end=utc(2026, 2, 1),
            change_at=utc(2026, 1, 10),
        )
    assert info.value.reason_code is RefusalCode.CURRENCY_CHANGE
    with pytest.raises(NaiveDatetimeError):
        prorate(
            old_price=STARTER,
            new_price=PRO,
            period_start=utc(2026, 1, 1),
            period_end=utc(2026, 2, 1),
            change_at=datetime(2026, 1, 10),
        )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(0), 0),
        (Fraction(1, 2), 1),
        (Fraction(49, 100), 0),
        (Fraction(5, 2), 3),
        (Fraction(7, 2), 4),
        (Fraction(2_000_001, 2_000_000), 1),
    ],
)
def test_round_half_up(value: Fraction, expected: int) -> None:
    assert round_half_up(value) == expected


def test_round_half_up_refuses_negative_values() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        round_half_up(Fraction(-1, 2))


# --- classification and timing -----------------------------------------------------

DEMO = load_catalog()


def demo(plan_id: str, currency: str = "EUR") -> Price:
    return DEMO.price(plan_id, currency)


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ("starter-monthly", "pro-monthly", ChangeKind.UPGRADE),
        ("business-monthly", "pro-yearly", ChangeKind.DOWNGRADE),
        # tier beats price: starter-yearly (9000/yr) -> pro-monthly (2900/mo) is an upgrade
        ("starter-yearly", "pro-monthly", ChangeKind.UPGRADE),
        # same tier: 90.00/yr is 7.50 a month, less than 9.00 a month
        ("starter-monthly", "starter-yearly", ChangeKind.DOWNGRADE),
        ("starter-yearly", "starter-monthly", ChangeKind.UPGRADE),
    ],
)
def test_classify_change(old: str, new: str, kind: ChangeKind) -> None:
    assert classify_change(demo(old), demo(new), DEMO) is kind


def test_lateral_change_between_equal_per_month_prices() -> None:
    quarterly = Price(
        plan_id="team-q", currency="EUR", amount=3000, interval=Interval.MONTH, interval_count=3
    )
    monthly_team = monthly("team-m", 1000)
    other_team = monthly("team-m2", 1000)
    catalog = Catalog(
        version=1,
        plans=(
            Plan(plan_id="team-q", name="Team quarterly", tier=1, prices=(quarterly,)),
            Plan(plan_id="team-m", name="Team monthly", tier=1, prices=(monthly_team,)),
            Plan(plan_id="team-m2", name="Team monthly 2", tier=1, prices=(other_team,)),
        ),
    )
    assert classify_change(quarterly, monthly_team, catalog) is ChangeKind.LATERAL
    assert decide_change(monthly_team, other_team, catalog) == ChangeDecision(
        ChangeKind.LATERAL, ChangeTiming.IMMEDIATELY
    )
    # equal per month but a different cycle: waits for the boundary
    assert decide_change(quarterly, monthly_team, catalog) == ChangeDecision(
        ChangeKind.LATERAL, ChangeTiming.PERIOD_END, deferred_to_boundary=True
    )


def test_default_policy_upgrades_now_and_downgrades_at_period_end() -> None:
    assert decide_change(demo("starter-monthly"), demo("pro-monthly"), DEMO) == ChangeDecision(
        ChangeKind.UPGRADE, ChangeTiming.IMMEDIATELY
    )
    assert decide_change(demo("pro-monthly"), demo("starter-monthly"), DEMO) == ChangeDecision(
        ChangeKind.DOWNGRADE, ChangeTiming.PERIOD_END
    )


def test_policy_is_configurable() -> None:
    policy = ChangePolicy(upgrade=ChangeTiming.PERIOD_END, downgrade=ChangeTiming.IMMEDIATELY)
    assert (
        decide_change(demo("starter-monthly"), demo("pro-monthly"), DEMO, policy).timing
        is ChangeTiming.PERIOD_END
    )
    assert (
        decide_change(demo("pro-monthly"), demo("starter-monthly"), DEMO, policy).timing
        is ChangeTiming.IMMEDIATELY
    )


def test_upgrade_to_another_interval_waits_for_the_boundary() -> None:
    decision = decide_change(demo("starter-monthly"), demo("business-yearly"), DEMO)
    assert decision == ChangeDecision(
        ChangeKind.UPGRADE, ChangeTiming.PERIOD_END, deferred_to_boundary=True
    )


def test_currency_change_and_same_plan_are_refused() -> None:
    with pytest.raises(PlanChangeRefused) as info:
        decide_change(demo("starter-monthly", "EUR"), demo("pro-monthly", "USD"), DEMO)
    assert info.value.reason_code is RefusalCode.CURRENCY_CHANGE
    with pytest.raises(PlanChangeRefused) as info:
        classify_change(demo("pro-monthly", "EUR"), demo("pro-monthly", "GBP"), DEMO)
    assert info.value.reason_code is RefusalCode.CURRENCY_CHANGE
    with pytest.raises(PlanChangeRefused) as info:
        decide_change(demo("pro-monthly"), demo("pro-monthly"), DEMO)
    assert info.value.reason_code is RefusalCode.PLAN_UNCHANGED
