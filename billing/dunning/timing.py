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


def outage_spacing(policy: Policy, outage_retry_index: int, jitter_rand: float) -> timedelta:
    """Delay before issuer-outage retry number ``outage_retry_index`` (0-based) under an
    outage budget: first delay, doubling, capped, jittered by up to ``jitter_percent``
    either way. Widening keeps a long outage at a few attempts a day."""
    base = policy.outage_first_delay_minutes * 2.0 ** min(outage_retry_index, 16)
    base = min(base, float(policy.outage_max_delay_minutes))
    factor = 1.0 + (policy.jitter_percent / 100.0) * (2.0 * jitter_rand - 1.0)
    return timedelta(minutes=round(base * factor))


# Jitter for a retry moved to the start of the daytime: spread over its first hours, so
# retries moved out of the night do not all arrive at 08:00 sharp.
_DAYTIME_JITTER_MINUTES = 180


def has_daytime(policy: Policy) -> bool:
    return policy.daytime_start_hour is not None and policy.daytime_end_hour is not None


def in_daytime(policy: Policy, instant: datetime, utc_offset_minutes: int) -> bool:
    """True when the policy has no daytime window or ``instant`` is inside it."""
    if policy.daytime_start_hour is None or policy.daytime_end_hour is None:
        return True
    local = instant + timedelta(minutes=utc_offset_minutes)
    minute = local.hour * 60 + local.minute
    return policy.daytime_start_hour * 60 <= minute < policy.daytime_end_hour * 60


def next_daytime(
    policy: Policy, not_before: datetime, utc_offset_minutes: int, minute_rand: float
) -> datetime:
    """``not_before`` if it is in the customer's local daytime, otherwise a jittered
    instant early in the next daytime."""
    start, end = policy.daytime_start_hour, policy.daytime_end_hour
    if start is None or end is None or in_daytime(policy, not_before, utc_offset_minutes):
        return not_before
    offset = timedelta(minutes=utc_offset_minutes)
    span = min(_DAYTIME_JITTER_MINUTES, (end - start) * 60)
    minute = min(int(span * minute_rand), span - 1)
    local_day = (not_before + offset).date()
    for days in range(2):
        day = local_day + timedelta(days=days)
        candidate = (
            datetime(day.year, day.month, day.day, tzinfo=UTC)
            + timedelta(hours=start, minutes=minute)
            - offset
        )
        if candidate >= not_before:
            return candidate
    raise AssertionError("a daytime starts within two days")  # pragma: no cover


def last_daytime(policy: Policy, not_after: datetime, utc_offset_minutes: int) -> datetime:
    """The latest instant not after ``not_after`` that is in the customer's daytime."""
    start, end = policy.daytime_start_hour, policy.daytime_end_hour
    if start is None or end is None or in_daytime(policy, not_after, utc_offset_minutes):
        return not_after
    offset = timedelta(minutes=utc_offset_minutes)
    local_day = (not_after + offset).date()
    for days in range(2):
        day = local_day - timedelta(days=days)
        candidate = (
            datetime(day.year, day.month, day.day, tzinfo=UTC)
            + timedelta(hours=end, minutes=-1)
            - offset
        )
        if candidate <= not_after:
            return candidate
    raise AssertionError("a daytime ended within two days")  # pragma: no cover


def third_rand(rand: float) -> float:
    """A third value in [0, 1) from the caller's one (the daytime jitter)."""
    return (rand * 104729.0) % 1.0
