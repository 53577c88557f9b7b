"""When the next retry should happen: backoff with jitter, issuer-outage retries, and
the pay-date / local-morning lean for ``insufficient_funds``.

Randomness comes only from the caller's ``rand`` value in [0, 1) (a workflow passes
``workflow.random().random()``), so the same inputs always give the same instant.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta

from billing.dunning.policy import Policy


def split_rand(rand: float) -> tuple[float, float]:
    """Two values in [0, 1) from one: the jitter and the minute inside the local morning."""
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand!r}")
    return rand, (rand * 7919.0) % 1.0


def backoff_delay(policy: Policy, retry_index: int, jitter_rand: float) -> timedelta:
    """Exponential delay before scheduled retry number ``retry_index`` (0-based), jittered
    by up to ``jitter_percent`` either way."""
    base = policy.first_delay_minutes * (policy.backoff_factor_percent / 100.0) ** retry_index
    base = min(base, float(policy.max_delay_minutes))
    factor = 1.0 + (policy.jitter_percent / 100.0) * (2.0 * jitter_rand - 1.0)
    return timedelta(minutes=round(base * factor))


def outage_delay(policy: Policy, jitter_rand: float) -> timedelta:
    span = policy.outage_delay_max_minutes - policy.outage_delay_min_minutes
    return timedelta(minutes=policy.outage_delay_min_minutes + round(span * jitter_rand))


def in_local_morning(policy: Policy, instant: datetime, utc_offset_minutes: int) -> bool:
    local = instant + timedelta(minutes=utc_offset_minutes)
    return policy.local_morning_start_hour <= local.hour < policy.local_morning_end_hour


def next_local_morning(
    policy: Policy, not_before: datetime, utc_offset_minutes: int, minute_rand: float
) -> datetime:
    """``not_before`` if it is already in the customer's local morning, otherwise a
    jittered minute of the next local morning."""
    if in_local_morning(policy, not_before, utc_offset_minutes):
        return not_before
    offset = timedelta(minutes=utc_offset_minutes)
    local_day = (not_before + offset).date()
    for days in range(2):
        candidate = _local_morning(policy, local_day + timedelta(days=days), offset, minute_rand)
        if candidate >= not_before:
            return candidate
    raise AssertionError("a local morning always starts within two days")  # pragma: no cover


def _local_morning(policy: Policy, day: date, offset: timedelta, minute_rand: float) -> datetime:
    span = (policy.local_morning_end_hour - policy.local_morning_start_hour) * 60
    minute = min(int(span * minute_rand), span - 1)
    local = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(
        hours=policy.local_morning_start_hour, minutes=minute
    )
    return local - offset


def pay_dates(policy: Policy, first: date, last: date) -> list[date]:
    """Typical pay dates between ``first`` and ``last`` inclusive: the policy's days of the
    month (moved back to Friday when they fall on a weekend) and the last business day."""
    found: set[date] = set()
    year, month = first.year, first.month
    while date(year, month, 1) <= last:
        days = [date(year, month, d) for d in policy.pay_days_of_month]
        if policy.pay_on_last_business_day:
            days.append(date(year, month, calendar.monthrange(year, month)[1]))
        for day in days:
            shifted = _previous_business_day(day)
            if first <= shifted <= last:
                found.add(shifted)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(found)


def _previous_business_day(day: date) -> date:
    # Weekends only: bank holidays differ by country and are not modelled.
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def lean_to_pay_date(
    policy: Policy,
    target: datetime,
    lower: datetime,
    upper: datetime,
    utc_offset_minutes: int,
    minute_rand: float,
) -> tuple[datetime, str]:
    """Move an ``insufficient_funds`` retry to the local morning of the pay date nearest
    ``target`` (within the policy's lean), else to the next local morning; never before
    ``lower`` nor after ``upper``. Returns the instant and the reason."""
    offset = timedelta(minutes=utc_offset_minutes)
    early = target - timedelta(minutes=policy.pay_date_lean_early_minutes)
    late = target + timedelta(minutes=policy.pay_date_lean_late_minutes)
    best: datetime | None = None
    for day in pay_dates(policy, (early + offset).date(), (late + offset).date()):
        morning = _local_morning(policy, day, offset, minute_rand)
        if not (lower <= morning <= upper and early <= morning <= late):
            continue
        if best is None or abs(morning - target) < abs(best - target):
            best = morning
    if best is not None:
        return best, "pay_date"
    morning = next_local_morning(policy, max(target, lower), utc_offset_minutes, minute_rand)
    if morning <= upper:
        return morning, "local_morning"
    return max(target, lower), "backoff"
