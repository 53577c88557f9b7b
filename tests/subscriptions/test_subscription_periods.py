from datetime import UTC, datetime, timedelta, timezone

import pytest

from billing.periods import (
    BillingPeriod,
    Interval,
    NaiveDatetimeError,
    period_containing,
    period_end,
    periods_from,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


JAN_31_ANCHOR_ENDS = [
    utc(2026, 2, 28),
    utc(2026, 3, 31),
    utc(2026, 4, 30),
    utc(2026, 5, 31),
    utc(2026, 6, 30),
    utc(2026, 7, 31),
    utc(2026, 8, 31),
    utc(2026, 9, 30),
    utc(2026, 10, 31),
    utc(2026, 11, 30),
    utc(2026, 12, 31),
    utc(2027, 1, 31),
]


def test_jan_31_anchor_through_a_year_returns_to_day_31_after_short_months() -> None:
    anchor = utc(2026, 1, 31)
    periods = periods_from(anchor, Interval.MONTH, 1, 12)
    assert [p.end for p in periods] == JAN_31_ANCHOR_ENDS
    assert [p.start for p in periods] == [anchor, *JAN_31_ANCHOR_ENDS[:-1]]


def test_chained_period_end_stays_on_the_anchor_grid() -> None:
    anchor = utc(2026, 1, 31)
    start, ends = anchor, []
    for _ in range(12):
        start = period_end(anchor, start, "month", 1)
        ends.append(start)
    assert ends == JAN_31_ANCHOR_ENDS


def test_jan_31_anchor_in_a_leap_year_reaches_feb_29() -> None:
    assert period_end(utc(2028, 1, 31), utc(2028, 1, 31), Interval.MONTH) == utc(2028, 2, 29)
    assert period_end(utc(2028, 1, 31), utc(2028, 2, 29), Interval.MONTH) == utc(2028, 3, 31)


def test_feb_29_yearly_anchor_clamps_in_common_years_and_returns_in_leap_years() -> None:
    anchor = utc(2028, 2, 29, 9, 30)
    ends = [p.end for p in periods_from(anchor, Interval.YEAR, 1, 4)]
    assert ends == [
        utc(2029, 2, 28, 9, 30),
        utc(2030, 2, 28, 9, 30),
        utc(2031, 2, 28, 9, 30),
        utc(2032, 2, 29, 9, 30),
    ]


def test_yearly_period_across_a_leap_day_has_366_days() -> None:
    (period,) = periods_from(utc(2027, 6, 1), Interval.YEAR, 1, 1)
    assert period == BillingPeriod(utc(2027, 6, 1), utc(2028, 6, 1))
    assert period.seconds == 366 * 86_400


def test_quarterly_interval_count_clamps_per_boundary() -> None:
    ends = [p.end for p in periods_from(utc(2026, 11, 30), Interval.MONTH, 3, 4)]
    assert ends == [utc(2027, 2, 28), utc(2027, 5, 30), utc(2027, 8, 30), utc(2027, 11, 30)]


def test_two_year_interval() -> None:
    assert period_end(utc(2026, 3, 1), utc(2026, 3, 1), Interval.YEAR, 2) == utc(2028, 3, 1)


def test_anchor_time_of_day_is_kept() -> None:
    anchor = utc(2026, 1, 31, 15, 30, 5)
    assert period_end(anchor, anchor, Interval.MONTH) == utc(2026, 2, 28, 15, 30, 5)


def test_start_before_the_anchor_ends_at_the_anchor() -> None:
    # A partial first period (e.g. after a trial) runs up to the billing cycle anchor.
    assert period_end(utc(2026, 3, 15), utc(2026, 3, 1), Interval.MONTH) == utc(2026, 3, 15)
    assert period_end(utc(2026, 3, 15), utc(2026, 2, 20), Interval.MONTH) == utc(2026, 3, 15)


def test_start_inside_a_period_ends_at_the_next_boundary() -> None:
    assert period_end(utc(2026, 1, 31), utc(2026, 2, 10), Interval.MONTH) == utc(2026, 2, 28)
    # one second before a boundary still ends at that boundary
    assert period_end(utc(2026, 1, 31), utc(2026, 2, 27, 23, 59, 59), Interval.MONTH) == utc(
        2026, 2, 28
    )


def test_period_containing() -> None:
    anchor = utc(2026, 1, 31)
    assert period_containing(anchor, utc(2026, 3, 5), Interval.MONTH) == BillingPeriod(
        utc(2026, 2, 28), utc(2026, 3, 31)
    )
    # a boundary instant belongs to the period it starts
    assert period_containing(anchor, utc(2026, 3, 31), Interval.MONTH) == BillingPeriod(
        utc(2026, 3, 31), utc(2026, 4, 30)
    )
    period = period_containing(anchor, utc(2026, 3, 5), Interval.MONTH)
    assert period.contains(utc(2026, 2, 28))
    assert not period.contains(utc(2026, 3, 31))


def test_month_lengths_in_seconds() -> None:
    jan, feb = periods_from(utc(2026, 1, 1), Interval.MONTH, 1, 2)
    assert (jan.seconds, feb.seconds) == (2_678_400, 2_419_200)
    (feb_leap,) = periods_from(utc(2028, 2, 1), Interval.MONTH, 1, 1)
    assert feb_leap.seconds == 2_505_600


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(NaiveDatetimeError, match="anchor"):
        period_end(datetime(2026, 1, 31), utc(2026, 2, 1), Interval.MONTH)
    with pytest.raises(NaiveDatetimeError, match="start"):
        period_end(utc(2026, 1, 31), datetime(2026, 2, 1), Interval.MONTH)
    with pytest.raises(NaiveDatetimeError):
        periods_from(datetime(2026, 1, 31), Interval.MONTH, 1, 1)


def test_other_zones_are_read_in_utc() -> None:
    # 23:00 at UTC-5 on Jan 31 is 04:00 UTC on Feb 1, so the grid sits on day 1 of UTC months.
    anchor = datetime(2026, 1, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    end = period_end(anchor, anchor, Interval.MONTH)
    assert end == utc(2026, 3, 1, 4, 0)
    assert end.tzinfo is UTC


@pytest.mark.parametrize(
    ("interval", "count"), [("week", 1), ("monthly", 1), ("month", 0), ("year", -1)]
)
def test_bad_interval_is_refused(interval: str, count: int) -> None:
    with pytest.raises(ValueError, match="interval"):
        period_end(utc(2026, 1, 1), utc(2026, 1, 1), interval, count)


def test_periods_from_refuses_negative_n() -> None:
    assert periods_from(utc(2026, 1, 1), Interval.MONTH, 1, 0) == ()
    with pytest.raises(ValueError, match="n must be"):
        periods_from(utc(2026, 1, 1), Interval.MONTH, 1, -1)
