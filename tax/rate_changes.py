"""Rate changes inside an invoiced period (pure): where the rate table now says a
component's rate changed strictly inside the period an invoice froze, and whether the
jurisdiction wants the part after the change adjusted.

``tax/data/rate_change_rules.csv`` holds one row per jurisdiction: ``adjust`` (the
part of a prepaid period after the change is taxed at the new rate, through a credit
or debit note when the next cycle is billed) or ``keep`` (the rate at the invoice date
stays), with its source. A jurisdiction without a row keeps the invoice-date rate
(Council Directive 2006/112/EC Article 65: a payment on account makes VAT chargeable
on receipt); see ``DEFAULT_RULE``.

The change is found by comparing the rate the invoice froze with the rows of the rate
table the worker holds now (a later version when the change was published after the
invoice): the first row of the same place and tax type that starts strictly inside the
period with another rate. Rates change at 00:00 UTC of the row's first day, as the
engine reads them (``tax.builtin``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from importlib import resources
from typing import Final

from tax.errors import RateDataError
from tax.model import TaxType
from tax.rates import RateRow, RateTable

RULES_FILE: Final = "rate_change_rules.csv"


class RateChangeRule(StrEnum):
    ADJUST = "adjust"
    KEEP = "keep"


@dataclass(frozen=True, slots=True)
class RuleRow:
    jurisdiction: str
    rule: RateChangeRule
    source_url: str
    retrieved_on: date | None
    note: str


DEFAULT_RULE = RuleRow(
    "*",
    RateChangeRule.KEEP,
    "https://eur-lex.europa.eu/eli/dir/2006/112/oj",
    None,
    "no row for the jurisdiction: the rate at the invoice date stays (Article 65)",
)


class RateChangeRules:
    def __init__(self, rows: list[RuleRow]) -> None:
        self._rows = {row.jurisdiction: row for row in rows}
        if len(self._rows) != len(rows):
            raise RateDataError(f"{RULES_FILE}: a jurisdiction appears twice")

    def adjusting(self) -> list[str]:
        """The jurisdictions whose rule is ``adjust``."""
        return sorted(j for j, row in self._rows.items() if row.rule is RateChangeRule.ADJUST)

    def rule_for(self, jurisdiction: str) -> RuleRow:
        """The row of the jurisdiction, else of its country ("US-TX" falls back to "US")."""
        country = jurisdiction.partition("-")[0]
        return self._rows.get(jurisdiction) or self._rows.get(country) or DEFAULT_RULE


def parse_rules(text: str) -> RateChangeRules:
    rows = []
    for number, raw in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        try:
            rule = RateChangeRule(raw["rule"])
        except ValueError:
            raise RateDataError(
                f"{RULES_FILE} line {number}: rule must be adjust or keep"
            ) from None
        if not raw["source_url"]:
            raise RateDataError(f"{RULES_FILE} line {number}: source_url is required")
        rows.append(
            RuleRow(
                raw["jurisdiction"],
                rule,
                raw["source_url"],
                date.fromisoformat(raw["retrieved_on"]) if raw["retrieved_on"] else None,
                raw["note"],
            )
        )
    return RateChangeRules(rows)


def load_rate_change_rules() -> RateChangeRules:
    text = (resources.files("tax") / "data" / RULES_FILE).read_text(encoding="utf-8")
    return parse_rules(text)


@dataclass(frozen=True, slots=True)
class RateChange:
    at: datetime  # 00:00 UTC of the first day of the new rate
    old_rate_ppm: int
    new_rate_ppm: int
    row: RateRow


def first_rate_change(
    table: RateTable,
    place: str,
    tax_type: TaxType,
    frozen_rate_ppm: int,
    start: datetime,
    end: datetime,
) -> RateChange | None:
    """The first change of the rate of ``tax_type`` at ``place`` (the customer's
    jurisdiction, "EE" or "CA-QC") strictly inside [start, end), away from the rate the
    invoice froze; None if the table shows none."""
    country, _, region = place.partition("-")
    rows = (table.rows_for(country, region) if region else []) or table.rows_for(country, "")
    for row in sorted(rows, key=lambda r: r.valid_from):
        if row.tax_type is not tax_type:
            continue
        begins = datetime.combine(row.valid_from, time(), tzinfo=UTC)
        if start < begins < end and row.rate_ppm != frozen_rate_ppm:
            return RateChange(begins, frozen_rate_ppm, row.rate_ppm, row)
    return None
