"""Effective-dated rate data loaded from the package's CSV files.

``tax/data/rates.csv`` holds one row per (country, region, tax type, period) with the
rate as an exact decimal percentage string, its public source and the day it was
compiled. ``tax/data/us_saas_taxability.csv`` says per US state whether SaaS is
taxable, and which share of the charge is. The table's ``version`` is a SHA-256 of
the files' bytes, so a quote names exactly the data it used.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from typing import Final

from tax.errors import RateDataError
from tax.model import TaxType

RATES_FILE: Final = "rates.csv"
US_SAAS_FILE: Final = "us_saas_taxability.csv"


class SaasTaxability(StrEnum):
    TAXABLE = "taxable"
    NOT_TAXABLE = "not_taxable"
    NO_SALES_TAX = "no_sales_tax"


@dataclass(frozen=True, slots=True)
class RateRow:
    country: str
    region: str  # "" for a national rate
    tax_type: TaxType
    rate_ppm: int
    valid_from: date
    valid_to: date | None
    source_url: str
    retrieved_on: date
    note: str

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class TaxabilityRow:
    state: str
    taxability: SaasTaxability
    taxable_ppm: int  # share of the charge that is taxable (Texas: 80 %)
    valid_from: date
    valid_to: date | None
    source_url: str
    note: str

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def percent_to_ppm(text: str) -> int:
    try:
        value = Decimal(text) * 10_000
    except InvalidOperation:
        raise RateDataError(f"rate {text!r} is not a decimal") from None
    if value != value.to_integral_value() or value < 0:
        raise RateDataError(f"rate {text!r} % is not a whole number of millionths")
    return int(value)


def _date(text: str) -> date | None:
    return date.fromisoformat(text) if text else None


def _required_date(text: str, where: str, column: str) -> date:
    parsed = _date(text)
    if parsed is None:
        raise RateDataError(f"{where}: {column} is required")
    return parsed


class RateTable:
    def __init__(self, rates: list[RateRow], taxability: list[TaxabilityRow], version: str) -> None:
        self.version = version
        self._rates: dict[tuple[str, str], list[RateRow]] = defaultdict(list)
        for row in rates:
            self._rates[(row.country, row.region)].append(row)
        self._taxability: dict[str, list[TaxabilityRow]] = defaultdict(list)
        for trow in taxability:
            self._taxability[trow.state].append(trow)
        self._countries = frozenset(row.country for row in rates)
        self._check_no_overlaps()

    def _check_no_overlaps(self) -> None:
        for key, rows in self._rates.items():
            by_type: dict[TaxType, list[RateRow]] = defaultdict(list)
            for row in rows:
                by_type[row.tax_type].append(row)
            for tax_type, typed in by_type.items():
                typed.sort(key=lambda r: r.valid_from)
                for earlier, later in itertools.pairwise(typed):
                    if earlier.valid_to is None or earlier.valid_to >= later.valid_from:
                        raise RateDataError(f"overlapping {tax_type} periods for {key}")

    def covers_country(self, country: str) -> bool:
        return country in self._countries

    def rows_for(self, country: str, region: str) -> list[RateRow]:
        return self._rates.get((country, region), [])

    def rates_in_force(self, country: str, region: str, day: date) -> list[RateRow]:
        """The rows for a place on a day; region rows where the table has them,
        else the national rows."""
        rows = self._rates.get((country, region)) if region else None
        if not rows:
            rows = self._rates.get((country, ""), [])
        return [row for row in rows if row.in_force(day)]

    def us_saas_taxability(self, state: str, day: date) -> TaxabilityRow | None:
        for row in self._taxability.get(state, []):
            if row.in_force(day):
                return row
        return None


def parse_rates(text: str) -> list[RateRow]:
    rows = []
    for number, raw in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        where = f"{RATES_FILE} line {number}"
        try:
            tax_type = TaxType(raw["tax_type"])
        except ValueError:
            raise RateDataError(f"{where}: unknown tax type {raw['tax_type']!r}") from None
        rows.append(
            RateRow(
                country=raw["country"],
                region=raw["region"],
                tax_type=tax_type,
                rate_ppm=percent_to_ppm(raw["rate_percent"]),
                valid_from=_required_date(raw["valid_from"], where, "valid_from"),
                valid_to=_date(raw["valid_to"]),
                source_url=raw["source_url"],
                retrieved_on=_required_date(raw["retrieved_on"], where, "retrieved_on"),
                note=raw["note"],
            )
        )
    return rows


def parse_taxability(text: str) -> list[TaxabilityRow]:
    rows = []
    for number, raw in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        where = f"{US_SAAS_FILE} line {number}"
        rows.append(
            TaxabilityRow(
                state=raw["state"],
                taxability=SaasTaxability(raw["taxability"]),
                taxable_ppm=percent_to_ppm(raw["taxable_percent"]),
                valid_from=_required_date(raw["valid_from"], where, "valid_from"),
                valid_to=_date(raw["valid_to"]),
                source_url=raw["source_url"],
                note=raw["note"],
            )
        )
    return rows


def rate_table_from_text(rates_csv: str, us_saas_csv: str) -> RateTable:
    digest = hashlib.sha256()
    for part in (rates_csv, us_saas_csv):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return RateTable(
        parse_rates(rates_csv), parse_taxability(us_saas_csv), "sha256:" + digest.hexdigest()[:16]
    )


_default: RateTable | None = None


def load_rate_table() -> RateTable:
    """The packaged rate table (parsed once per process)."""
    global _default
    if _default is None:
        data = resources.files("tax") / "data"
        _default = rate_table_from_text(
            (data / RATES_FILE).read_text(encoding="utf-8"),
            (data / US_SAAS_FILE).read_text(encoding="utf-8"),
        )
    return _default
