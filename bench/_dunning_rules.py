"""Network-rule violations, counted independently of the scheduler for bench/dunning_sim.py.

Every charge a strategy made is re-counted per card, across every invoice on the card,
against the rule tables in ``billing/dunning/data/network_rules.json`` read as plain
JSON (not through ``billing.dunning.network_rules``): rolling caps (Visa 15 in 30 days;
Mastercard 10 in 24 h and 35 in 30 days), Visa Category 1 codes and Mastercard MAC
03/21 that forbid any later attempt, Mastercard MAC 24-30 retry-after delays, and the
decline classifier's hard family (lost, stolen, pick-up, closed card, ...).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from billing.declines import DeclineFamily, DeclineInfo, classify_decline
from billing.dunning import CardRef

RULES_PATH = Path(__file__).resolve().parent.parent / "billing/dunning/data/network_rules.json"
NIGHT_HOURS = range(1, 5)  # 01:00-05:00 customer-local: the night the target counts


@dataclass(frozen=True)
class Charge:
    """One charge that reached the issuer."""

    at: datetime
    card: CardRef
    decline: DeclineInfo | None  # None: approved
    background: bool  # a retry nobody asked for in person (scheduled, outage, updater)


def load_rule_tables() -> dict[str, dict[str, Any]]:
    raw = json.loads(RULES_PATH.read_text("utf-8"))
    return dict(raw["brands"])


def is_hard(decline: DeclineInfo, brand: str, table: dict[str, Any]) -> bool:
    family = classify_decline(replace(decline, card_brand=brand)).family
    return (
        family is DeclineFamily.HARD
        or (decline.network_decline_code or "").upper() in set(table["never_retry_network_decline_codes"])
        or decline.network_advice_code in set(table["stop_advice_codes"])
    )  # fmt: skip


def count_violations(charges: list[Charge], tables: dict[str, dict[str, Any]]) -> int:
    """Charges that broke a rule, over all the charges on one customer's cards."""
    violations = 0
    by_card: dict[str, list[Charge]] = {}
    for charge in sorted(charges, key=lambda c: c.at):
        by_card.setdefault(charge.card.fingerprint, []).append(charge)
    for card_charges in by_card.values():
        brand = card_charges[0].card.brand
        table = tables.get(brand, tables["default"])
        waits = table["retry_after_advice_codes_minutes"]
        blocked = False
        not_before: datetime | None = None
        for charge in card_charges:
            if blocked or (not_before is not None and charge.at < not_before):
                violations += 1
            if charge.decline is None:
                continue
            blocked = blocked or is_hard(charge.decline, brand, table)
            wait = waits.get(charge.decline.network_advice_code or "")
            if wait is not None:
                not_before = charge.at + timedelta(minutes=wait)
        times = [c.at for c in card_charges]
        for cap in table["rolling_caps"]:
            window = timedelta(minutes=cap["window_minutes"])
            violations += _excess_in_windows(times, window, cap["max_attempts"])
    return violations


def _excess_in_windows(times: list[datetime], window: timedelta, cap: int) -> int:
    # Charges that were the (cap+1)-th or later inside some window (t - window, t].
    excess = 0
    for end, t in enumerate(times):
        start = bisect.bisect_right(times, t - window)
        if end - start + 1 > cap:
            excess += 1
    return excess


def at_night(at: datetime, utc_offset_minutes: int) -> bool:
    return (at + timedelta(minutes=utc_offset_minutes)).hour in NIGHT_HOURS
