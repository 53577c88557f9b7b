"""The reconciliation tolerances and expected fee schedule, as versioned data.

``data/tolerances.json`` lists every version ever published; ``tolerances_at(now)``
is the version in force at an instant and ``load_tolerances(version)`` any earlier one,
so a finding can always be re-judged by the rules that made it.

Expected fee: ``round_half_up(amount * (percent_bp [+ fx_bp]) / 10_000) + fixed_minor``
on the settled amount, the EEA rates for a card issued in ``eea_countries``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib.resources import files
from typing import Any


@dataclass(frozen=True, slots=True)
class Rate:
    percent_bp: int
    fixed_minor: int


@dataclass(frozen=True, slots=True)
class Tolerances:
    version: int
    effective_from: datetime
    eea_countries: frozenset[str]
    eea: Rate
    other: Rate
    fx_bp: int
    fee_tolerance_minor: int
    fee_tolerance_bp: int
    unsettled_after_days: int
    drift_tolerance_minor: int

    def expected_fee(self, amount: int, card_country: str | None, converted: bool) -> int:
        rate = self.eea if card_country in self.eea_countries else self.other
        bp = rate.percent_bp + (self.fx_bp if converted else 0)
        return round_half_up(abs(amount) * bp, 10_000) + rate.fixed_minor

    def fee_allowance(self, amount: int) -> int:
        return self.fee_tolerance_minor + round_half_up(abs(amount) * self.fee_tolerance_bp, 10_000)


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, for non-negative integers."""
    return (2 * numerator + denominator) // (2 * denominator)


def _parse(raw: dict[str, Any]) -> Tolerances:
    schedule = raw["fee_schedule"]
    return Tolerances(
        version=int(raw["version"]),
        effective_from=datetime.fromisoformat(raw["effective_from"].replace("Z", "+00:00")),
        eea_countries=frozenset(schedule["eea_countries"]),
        eea=Rate(int(schedule["eea"]["percent_bp"]), int(schedule["eea"]["fixed_minor"])),
        other=Rate(int(schedule["other"]["percent_bp"]), int(schedule["other"]["fixed_minor"])),
        fx_bp=int(schedule["fx_bp"]),
        fee_tolerance_minor=int(raw["fee_tolerance_minor"]),
        fee_tolerance_bp=int(raw["fee_tolerance_bp"]),
        unsettled_after_days=int(raw["unsettled_after_days"]),
        drift_tolerance_minor=int(raw["drift_tolerance_minor"]),
    )


@cache
def _versions() -> tuple[Tolerances, ...]:
    text = files("billing.reconciliation").joinpath("data/tolerances.json").read_text()
    parsed = tuple(_parse(raw) for raw in json.loads(text)["versions"])
    return tuple(sorted(parsed, key=lambda t: t.effective_from))


def load_tolerances(version: int) -> Tolerances:
    for tolerances in _versions():
        if tolerances.version == version:
            return tolerances
    raise KeyError(f"no reconciliation tolerances version {version}")


def tolerances_at(now: datetime) -> Tolerances:
    in_force = [t for t in _versions() if t.effective_from <= now]
    if not in_force:
        raise KeyError(f"no reconciliation tolerances in force at {now.isoformat()}")
    return in_force[-1]
