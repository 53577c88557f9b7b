"""Card network reattempt rules as data (``data/network_rules.json``), and the arithmetic
that keeps a card's attempt history inside them.

Caps are rolling windows: an attempt at ``t`` is allowed when fewer than ``max_attempts``
earlier attempts on the same card fall in ``(t - window, t]``. Because attempts are only
ever added in time order, checking each new attempt this way keeps every window of that
length at or under the cap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any


@dataclass(frozen=True)
class RollingCap:
    window: timedelta
    max_attempts: int
    rule: str


@dataclass(frozen=True)
class BrandRules:
    brand: str
    never_retry_network_decline_codes: frozenset[str]
    stop_advice_codes: frozenset[str]
    retry_after_advice_codes: dict[str, timedelta]
    rolling_caps: tuple[RollingCap, ...]
    source: str


@dataclass(frozen=True)
class NetworkRules:
    brands: dict[str, BrandRules]

    def for_brand(self, brand: str | None) -> BrandRules:
        return self.brands.get((brand or "").lower(), self.brands["default"])


@dataclass(frozen=True)
class CardAttempt:
    """One past attempt on a card, as the rules need to see it."""

    at: datetime
    network_decline_code: str | None = None
    network_advice_code: str | None = None


def _brand_from_json(brand: str, raw: dict[str, Any]) -> BrandRules:
    return BrandRules(
        brand=brand,
        never_retry_network_decline_codes=frozenset(raw["never_retry_network_decline_codes"]),
        stop_advice_codes=frozenset(raw["stop_advice_codes"]),
        retry_after_advice_codes={
            code: timedelta(minutes=minutes)
            for code, minutes in raw["retry_after_advice_codes_minutes"].items()
        },
        rolling_caps=tuple(
            RollingCap(timedelta(minutes=cap["window_minutes"]), cap["max_attempts"], cap["rule"])
            for cap in raw["rolling_caps"]
        ),
        source=raw["source"],
    )


@cache
def network_rules() -> NetworkRules:
    path = files("billing.dunning").joinpath("data/network_rules.json")
    raw = json.loads(path.read_text("utf-8"))
    brands = {name: _brand_from_json(name, item) for name, item in raw["brands"].items()}
    if "default" not in brands:
        raise ValueError("network rules need a default brand entry")
    return NetworkRules(brands)


def forbids_retry(rules: BrandRules, attempt: CardAttempt) -> bool:
    """Whether this decline forbids any further attempt on the card (Visa Category 1,
    Mastercard MAC 03/21)."""
    ndc = (attempt.network_decline_code or "").upper()
    return ndc in rules.never_retry_network_decline_codes or (
        attempt.network_advice_code in rules.stop_advice_codes
    )


def earliest_allowed(
    rules: BrandRules, history: Sequence[CardAttempt], not_before: datetime
) -> datetime | None:
    """The earliest instant at or after ``not_before`` at which one more attempt on this
    card stays within the brand's rules; ``None`` if the card must never be retried."""
    if any(forbids_retry(rules, attempt) for attempt in history):
        return None
    earliest = not_before
    for attempt in history:
        wait = rules.retry_after_advice_codes.get(attempt.network_advice_code or "")
        if wait is not None:
            earliest = max(earliest, attempt.at + wait)
    times = sorted(attempt.at for attempt in history)
    for cap in rules.rolling_caps:
        earliest = max(earliest, _cap_bound(times, cap, earliest))
    return earliest


def _cap_bound(times: Sequence[datetime], cap: RollingCap, t: datetime) -> datetime:
    # Attempts in (t - window, t]; moving t later only drops attempts from the window,
    # so the bound is the instant the oldest surplus attempt leaves it.
    in_window = [a for a in times if t - cap.window < a <= t]
    surplus = len(in_window) - cap.max_attempts + 1
    if surplus <= 0:
        return t
    return in_window[surplus - 1] + cap.window


def max_in_any_window(times: Iterable[datetime], window: timedelta) -> int:
    """The most attempts found in any half-open window ``[s, s + window)``."""
    ordered = sorted(times)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best
