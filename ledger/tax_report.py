"""Tax liability per jurisdiction and period, from the compliance ledger's line records.

A row sums the tax line records of documents issued in ``[start, end)`` (invoices by
finalization time, credit and debit notes by issue time): invoices and debit notes add,
credit notes subtract (their records are negative). Rows are per jurisdiction, tax
type, currency, rate and reason, the shape an OSS or GST return asks for (a reverse
charge row shows the taxable amount with no tax). The tax of a jurisdiction summed over
its rows equals the movement of its ``tax_payable`` ledger accounts in the same period,
because every document posts exactly its records' tax (``ledger_tax_movements``).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from ledger.compliance_tables import tax_line_records as _records
from ledger.db import READ_ONLY
from ledger.models import accounts_table as _a
from ledger.models import entries_table as _e
from ledger.models import postings_table as _p

CSV_COLUMNS = (
    "jurisdiction",
    "tax_type",
    "currency",
    "rate_ppm",
    "reason",
    "taxable_amount",
    "tax_amount",
    "documents",
)


class TaxReportError(ValueError):
    """The period is malformed (naive, unparsable, or not start < end)."""


@dataclass(frozen=True, slots=True)
class LiabilityRow:
    jurisdiction: str
    tax_type: str  # "" when the place's tax is unknown (not collecting)
    currency: str
    rate_ppm: int
    reason: str
    taxable_amount: int
    tax_amount: int
    documents: int


@dataclass(frozen=True, slots=True)
class LiabilityReport:
    start: datetime
    end: datetime
    rows: tuple[LiabilityRow, ...]

    def tax_by_jurisdiction(self) -> dict[tuple[str, str], int]:
        totals: dict[tuple[str, str], int] = defaultdict(int)
        for row in self.rows:
            totals[(row.jurisdiction, row.currency)] += row.tax_amount
        return dict(totals)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "rows": [asdict(row) for row in self.rows],
        }

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in self.rows:
            writer.writerow([getattr(row, column) for column in CSV_COLUMNS])
        return out.getvalue()


def parse_bound(value: str | date | datetime, what: str) -> datetime:
    """An ISO date (midnight UTC) or an aware datetime; naive datetimes are refused."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (
                datetime.fromisoformat(text)
                if "T" in text or " " in text
                else date.fromisoformat(text)
            )
        except ValueError:
            raise TaxReportError(f"{what}: {value!r} is not an ISO date or datetime") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise TaxReportError(f"{what}: {value.isoformat()} has no timezone")
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def check_period(start: datetime, end: datetime) -> None:
    for what, bound in (("from", start), ("to", end)):
        if bound.tzinfo is None or bound.utcoffset() is None:
            raise TaxReportError(f"{what} must be timezone-aware")
    if not start < end:
        raise TaxReportError("the period must have from < to")


def liability_report(conn: Connection, *, start: datetime, end: datetime) -> LiabilityReport:
    check_period(start, end)
    r = _records
    query = (
        select(
            r.c.jurisdiction,
            func.coalesce(r.c.tax_type, ""),
            r.c.currency,
            r.c.rate_ppm,
            r.c.reason,
            func.sum(r.c.taxable_amount),
            func.sum(r.c.tax_amount),
            func.count(func.distinct(r.c.document_id)),
        )
        .where(r.c.recorded_at >= start, r.c.recorded_at < end)
        .group_by(r.c.jurisdiction, r.c.tax_type, r.c.currency, r.c.rate_ppm, r.c.reason)
    )
    rows = [
        LiabilityRow(
            jurisdiction=str(j),
            tax_type=str(t),
            currency=str(c),
            rate_ppm=int(rate),
            reason=str(reason),
            taxable_amount=int(taxable),
            tax_amount=int(tax),
            documents=int(docs),
        )
        for j, t, c, rate, reason, taxable, tax, docs in conn.execute(query)
    ]
    rows.sort(key=lambda x: (x.jurisdiction, x.tax_type, x.currency, x.rate_ppm, x.reason))
    return LiabilityReport(start.astimezone(UTC), end.astimezone(UTC), tuple(rows))


def ledger_tax_movements(
    conn: Connection, *, start: datetime, end: datetime
) -> dict[tuple[str, str], int]:
    """Tax owed per (jurisdiction, currency) by entries effective in ``[start, end)``:
    the negated sum of ``tax_payable`` postings (credits grow the liability)."""
    check_period(start, end)
    query = (
        select(_a.c.code, _a.c.currency, func.sum(_p.c.amount))
        .join(_p, _p.c.account_id == _a.c.id)
        .join(_e, _e.c.id == _p.c.entry_id)
        .where(_a.c.code.like("tax\\_payable:%", escape="\\"))
        .where(_e.c.effective_at >= start, _e.c.effective_at < end)
        .group_by(_a.c.code, _a.c.currency)
    )
    out: dict[tuple[str, str], int] = {}
    for code, currency, total in conn.execute(query):
        jurisdiction = str(code).removeprefix("tax_payable:").rsplit(":", 1)[0]
        out[(jurisdiction, str(currency))] = -int(total)
    return out


def tax_liability(engine: Engine, *, start: datetime, end: datetime) -> LiabilityReport:
    with engine.connect().execution_options(**READ_ONLY) as conn:
        try:
            return liability_report(conn, start=start, end=end)
        finally:
            conn.rollback()
