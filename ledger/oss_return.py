"""The EU One-Stop-Shop quarterly VAT return, from the compliance ledger's line records.

Rows per member state of consumption, rate and currency: the taxable amount and the
VAT of the B2C supplies taxed there (``standard_rated`` VAT lines in a member state
other than the seller's establishment; reverse-charged B2B supplies, lines not
collected and the domestic member state are not OSS supplies). A document counts in
the quarter it was issued in (its records' ``recorded_at``). Records issued in the
quarter whose tax point lies in an earlier quarter (credit notes, and debit notes, on
earlier invoices) are the corrections of that earlier quarter, which the return lists
separately (Implementing Regulation (EU) No 282/2011, Article 59a; Directive
2006/112/EC Article 369g(4)): per earlier quarter, member state, rate and currency.
Amounts stay in the document currency; the return is in EUR, so other currencies must
still be converted at the ECB rate of the last day of the quarter (Article 369h(2)).

The sums are two grouped queries over the records of the quarter (``recorded_at`` is
indexed), however many lines it holds. The tax of a member state, summed over its rows
and corrections, equals the movement of its ``tax_payable`` accounts in the quarter.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, extract, func, select

from ledger.compliance_tables import tax_line_records as _records
from ledger.db import READ_ONLY
from tax.places import EU_MEMBER_STATES

CSV_COLUMNS = (
    "section",
    "member_state",
    "rate_ppm",
    "currency",
    "taxable_amount",
    "vat_amount",
    "documents",
    "corrects_quarter",
)
_QUARTER = re.compile(r"^(\d{4})-?Q([1-4])$")


class OssReturnError(ValueError):
    """The quarter or the seller's member state is malformed."""


@dataclass(frozen=True, slots=True, order=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> Quarter:
        found = _QUARTER.match(text.strip().upper())
        if found is None or not 2000 <= int(found.group(1)) <= 2999:
            raise OssReturnError(f"{text!r} is not a quarter such as 2026Q3")
        return cls(int(found.group(1)), int(found.group(2)))

    @classmethod
    def of(cls, moment: datetime) -> Quarter:
        return cls(moment.year, (moment.month - 1) // 3 + 1)

    @property
    def start(self) -> datetime:
        return datetime(self.year, 3 * self.number - 2, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return (
            datetime(self.year + 1, 1, 1, tzinfo=UTC)
            if self.number == 4
            else datetime(self.year, 3 * self.number + 1, 1, tzinfo=UTC)
        )

    def __str__(self) -> str:
        return f"{self.year}Q{self.number}"


@dataclass(frozen=True, slots=True, order=True)
class OssRow:
    member_state: str
    rate_ppm: int
    currency: str
    taxable_amount: int
    vat_amount: int
    documents: int


@dataclass(frozen=True, slots=True)
class OssCorrection:
    corrects_quarter: str
    member_state: str
    rate_ppm: int
    currency: str
    taxable_amount: int
    vat_amount: int
    documents: int


@dataclass(frozen=True, slots=True)
class OssReturn:
    quarter: Quarter
    seller_country: str | None
    rows: tuple[OssRow, ...]
    corrections: tuple[OssCorrection, ...]

    def vat_by_member_state(self) -> dict[tuple[str, str], int]:
        """VAT per (member state, currency), supplies and corrections together."""
        totals: dict[tuple[str, str], int] = {}
        items = [(r.member_state, r.currency, r.vat_amount) for r in self.rows] + [
            (c.member_state, c.currency, c.vat_amount) for c in self.corrections
        ]
        for state, currency, vat in items:
            totals[(state, currency)] = totals.get((state, currency), 0) + vat
        return totals

    def as_dict(self) -> dict[str, Any]:
        return {
            "quarter": str(self.quarter),
            "from": self.quarter.start.isoformat(),
            "to": self.quarter.end.isoformat(),
            "seller_country": self.seller_country,
            "rows": [asdict(row) for row in self.rows],
            "corrections": [asdict(c) for c in self.corrections],
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.rows:
            writer.writerow(
                ["supply", row.member_state, row.rate_ppm, row.currency,
                 row.taxable_amount, row.vat_amount, row.documents, ""]
            )  # fmt: skip
        for c in self.corrections:
            writer.writerow(
                ["correction", c.member_state, c.rate_ppm, c.currency,
                 c.taxable_amount, c.vat_amount, c.documents, c.corrects_quarter]
            )  # fmt: skip
        return out.getvalue()


def oss_member_states(seller_country: str | None) -> list[str]:
    """Where supplies go on the OSS return: every member state but the seller's own
    (all of them for a seller established outside the EU, the non-Union scheme)."""
    if seller_country is not None and len(seller_country) != 2:
        raise OssReturnError(f"seller country {seller_country!r} is not an ISO 3166-1 code")
    own = (seller_country or "").upper()
    return sorted(EU_MEMBER_STATES - {own})


def oss_return_report(
    conn: Connection, quarter: Quarter, *, seller_country: str | None
) -> OssReturn:
    r = _records
    start, end = quarter.start, quarter.end
    oss = (
        r.c.recorded_at >= start,
        r.c.recorded_at < end,
        r.c.tax_type == "vat",
        r.c.reason == "standard_rated",
        r.c.jurisdiction.in_(oss_member_states(seller_country)),
    )
    sums = (
        func.sum(r.c.taxable_amount),
        func.sum(r.c.tax_amount),
        func.count(func.distinct(r.c.document_id)),
    )
    supplies = (
        select(r.c.jurisdiction, r.c.rate_ppm, r.c.currency, *sums)
        .where(*oss, r.c.tax_point_at >= start)
        .group_by(r.c.jurisdiction, r.c.rate_ppm, r.c.currency)
    )
    year, month = extract("year", r.c.tax_point_at), extract("month", r.c.tax_point_at)
    earlier = (
        select(year, month, r.c.jurisdiction, r.c.rate_ppm, r.c.currency, *sums)
        .where(*oss, r.c.tax_point_at < start)
        .group_by(year, month, r.c.jurisdiction, r.c.rate_ppm, r.c.currency)
    )
    rows = sorted(
        OssRow(str(j), int(rate), str(c), int(taxable), int(vat), int(docs))
        for j, rate, c, taxable, vat, docs in conn.execute(supplies)
    )
    folded: dict[tuple[str, str, int, str], list[int]] = {}
    for y, m, j, rate, c, taxable, vat, docs in conn.execute(earlier):
        key = (f"{int(y)}Q{(int(m) - 1) // 3 + 1}", str(j), int(rate), str(c))
        acc = folded.setdefault(key, [0, 0, 0])
        acc[0] += int(taxable)
        acc[1] += int(vat)
        acc[2] += int(docs)  # a document spans one tax point, so one month
    corrections = tuple(
        OssCorrection(q, j, rate, c, taxable, vat, docs)
        for (q, j, rate, c), (taxable, vat, docs) in sorted(folded.items())
    )
    return OssReturn(quarter, seller_country, tuple(rows), corrections)


def oss_return(engine: Engine, quarter: Quarter, *, seller_country: str | None) -> OssReturn:
    with engine.connect().execution_options(**READ_ONLY) as conn:
        try:
            return oss_return_report(conn, quarter, seller_country=seller_country)
        finally:
            conn.rollback()
