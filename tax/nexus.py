"""Economic-nexus and registration thresholds (pure): the sourced, dated data and the
measurement windows a running total is taken over.

``tax/data/nexus_thresholds.csv`` holds, per jurisdiction (a US state "US-TX", or a
country outside the EU whose registration threshold the data has), the sales amount
in the threshold's currency (whole units), the transaction count where the place still
counts transactions (``combine``: ``or`` when either crossing gives nexus, ``and``
when both must), the measurement period and the source.

Measurement periods, for a check on ``day``:

- ``calendar_year``: the calendar year so far (the states that also look at the
  previous year are crossed by the year in which the sales happen first);
- ``rolling_12_months``: the twelve months up to and including ``day``;
- ``previous_4_quarters``: the four calendar quarters before the one ``day`` is in.

Alerts fire at ``ALERT_LEVELS`` percent of a threshold (the larger of the sales and
transaction shares; for ``and``, the smaller), where the seller is not registered.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from typing import Final

from billing.money import currency_exponent
from tax.errors import RateDataError

THRESHOLDS_FILE: Final = "nexus_thresholds.csv"
PERIODS = ("calendar_year", "rolling_12_months", "previous_4_quarters")
ALERT_LEVELS = (80, 100)


@dataclass(frozen=True, slots=True)
class Threshold:
    jurisdiction: str
    currency: str
    sales_minor: int  # the sales amount in minor units of ``currency``
    transactions: int | None
    combine: str  # "or" | "and" ("" without a transaction count)
    period: str
    valid_from: date
    valid_to: date | None
    source_url: str
    note: str

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def window(self, day: date) -> tuple[datetime, datetime]:
        """[start, end) of the measurement period for a check on ``day``, in UTC."""
        if self.period == "calendar_year":
            start = date(day.year, 1, 1)
            end = date(day.year + 1, 1, 1)
        elif self.period == "rolling_12_months":
            end = date.fromordinal(day.toordinal() + 1)
            start = _months_before(end, 12)
        else:
            quarter_start = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
            end = quarter_start
            start = _months_before(end, 12)
        return _midnight(start), _midnight(end)

    def percent(self, sales_minor: int, transactions: int) -> int:
        """How far along the threshold is, in whole percent (rounded down)."""
        by_sales = sales_minor * 100 // self.sales_minor
        if self.transactions is None:
            return max(by_sales, 0)
        by_count = transactions * 100 // self.transactions
        share = min(by_sales, by_count) if self.combine == "and" else max(by_sales, by_count)
        return max(share, 0)


def _months_before(day: date, months: int) -> date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, 28))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def parse_thresholds(text: str) -> list[Threshold]:
    rows = []
    for number, raw in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        where = f"{THRESHOLDS_FILE} line {number}"
        if raw["measurement_period"] not in PERIODS:
            raise RateDataError(f"{where}: unknown measurement_period")
        if not raw["source_url"]:
            raise RateDataError(f"{where}: source_url is required")
        transactions = int(raw["transactions"]) if raw["transactions"] else None
        if (transactions is None) != (raw["combine"] == "") or raw["combine"] not in (
            "",
            "or",
            "and",
        ):
            raise RateDataError(f"{where}: combine is or/and exactly when transactions count")
        rows.append(
            Threshold(
                jurisdiction=raw["jurisdiction"],
                currency=raw["currency"],
                sales_minor=int(raw["sales_amount"]) * 10 ** currency_exponent(raw["currency"]),
                transactions=transactions,
                combine=raw["combine"],
                period=raw["measurement_period"],
                valid_from=date.fromisoformat(raw["valid_from"]),
                valid_to=date.fromisoformat(raw["valid_to"]) if raw["valid_to"] else None,
                source_url=raw["source_url"],
                note=raw["note"],
            )
        )
    return rows


def load_thresholds() -> list[Threshold]:
    text = (resources.files("tax") / "data" / THRESHOLDS_FILE).read_text(encoding="utf-8")
    return parse_thresholds(text)


def thresholds_in_force(thresholds: list[Threshold], day: date) -> list[Threshold]:
    return [t for t in thresholds if t.in_force(day)]
