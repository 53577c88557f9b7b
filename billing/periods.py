"""Billing period arithmetic in UTC.

Periods are laid out on a grid fixed by the billing cycle anchor: boundary ``j`` is the
anchor moved by ``j * interval_count`` months (12 per year), keeping the anchor's time of
day. When the anchor's day does not exist in the target month the boundary is clamped to
that month's last day, but the next boundary goes back to the anchor's day, so a Jan 31
anchor runs Jan 31 -> Feb 28 (29 in leap years) -> Mar 31 -> Apr 30 -> May 31. A yearly
anchor on Feb 29 lands on Feb 28 in common years and on Feb 29 again in leap years. This
is how Stripe's ``billing_cycle_anchor`` behaves
(docs.stripe.com/billing/subscriptions/billing-cycle).

Every datetime must be timezone-aware; aware values in another zone are converted to UTC
first, so the calendar used is always UTC. Naive datetimes are refused.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

_ONE_SECOND = timedelta(seconds=1)


class Interval(StrEnum):
    MONTH = "month"
    YEAR = "year"


class NaiveDatetimeError(ValueError):
    """A naive datetime reached code that only works with aware UTC instants."""


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """The half-open interval ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> int:
        return whole_seconds(self.end - self.start)

    def contains(self, at: datetime) -> bool:
        return self.start <= as_utc(at, "at") < self.end


def as_utc(value: datetime, name: str = "datetime") -> datetime:
    """``value`` converted to UTC; naive values raise ``NaiveDatetimeError``."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


def whole_seconds(delta: timedelta) -> int:
    """Whole seconds in ``delta``, rounded towards negative infinity."""
    return delta // _ONE_SECOND


def months_per_period(interval: Interval | str, interval_count: int) -> int:
    if type(interval_count) is not int or interval_count < 1:
        raise ValueError(f"interval_count must be a positive int, got {interval_count!r}")
    try:
        unit = Interval(interval)
    except ValueError:
        raise ValueError(f"interval must be 'month' or 'year', got {interval!r}") from None
    return interval_count * (12 if unit is Interval.YEAR else 1)


def boundary(anchor: datetime, months: int) -> datetime:
    """The anchor moved by ``months`` (may be negative), day clamped to the month's end."""
    anchor = as_utc(anchor, "anchor")
    month_index = anchor.year * 12 + (anchor.month - 1) + months
    year, month0 = divmod(month_index, 12)
    day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
    return anchor.replace(year=year, month=month0 + 1, day=day)


def period_end(
    anchor: datetime, start: datetime, interval: Interval | str, interval_count: int = 1
) -> datetime:
    """The first anchor-grid boundary strictly after ``start``.

    ``start`` need not sit on the grid: a first period that begins before the anchor
    (a partial first period) ends at the anchor or the first boundary after ``start``.
    """
    step = months_per_period(interval, interval_count)
    anchor = as_utc(anchor, "anchor")
    start = as_utc(start, "start")
    offset = (start.year - anchor.year) * 12 + (start.month - anchor.month)
    j = offset // step
    while boundary(anchor, j * step) > start:
        j -= 1
    while boundary(anchor, j * step) <= start:
        j += 1
    return boundary(anchor, j * step)


def period_containing(
    anchor: datetime, at: datetime, interval: Interval | str, interval_count: int = 1
) -> BillingPeriod:
    """The grid period ``[start, end)`` that contains ``at``."""
    step = months_per_period(interval, interval_count)
    end = period_end(anchor, at, interval, interval_count)
    anchor_utc = as_utc(anchor, "anchor")
    end_offset = (end.year - anchor_utc.year) * 12 + (end.month - anchor_utc.month)
    return BillingPeriod(start=boundary(anchor_utc, end_offset - step), end=end)


def periods_from(
    anchor: datetime, interval: Interval | str, interval_count: int, n: int
) -> tuple[BillingPeriod, ...]:
    """The first ``n`` consecutive periods starting at the anchor."""
    if type(n) is not int or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    step = months_per_period(interval, interval_count)
    anchor = as_utc(anchor, "anchor")
    return tuple(
        BillingPeriod(start=boundary(anchor, i * step), end=boundary(anchor, (i + 1) * step))
        for i in range(n)
    )
