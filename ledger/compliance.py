"""The compliance ledger: append-only records an auditor can recompute tax from.

- rate table versions, with every rate and SaaS-taxability row of the version;
- seller registrations / nexus (effective-dated ``tax.Registration`` records);
- customers' exemption certificates;
- VAT ID validations (the offline ``stdnum`` format check or a live check's answer);
- which rate each document line used (``tax_line_records``, written by the invoice store).

Nothing here is ever updated or deleted (the database refuses it). A change is a new
record: a registration or certificate recorded again under the same identity (its
jurisdiction and number) supersedes the earlier record from then on, e.g. to set the
day it ends. Functions taking a ``Connection`` write in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from ledger.compliance_tables import (
    compliance_exemption_certificates as _certs,
)
from ledger.compliance_tables import (
    compliance_rate_rows as _rate_rows,
)
from ledger.compliance_tables import (
    compliance_rate_tables as _rate_tables,
)
from ledger.compliance_tables import (
    compliance_registrations as _regs,
)
from ledger.compliance_tables import (
    compliance_vat_checks as _vat_checks,
)
from ledger.compliance_tables import (
    tax_line_records as _tax_lines,
)
from ledger.db import READ_ONLY, insert_or_ignore
from ledger.entries import require_aware_utc
from tax import (
    ExemptionCertificate,
    Registration,
    TaxComponent,
    TaxQuote,
    TaxType,
    VatCheckResult,
)
from tax.rates import RATES_FILE, US_SAAS_FILE, parse_rates, parse_taxability, rate_table_from_text
from tax.vat_ids import is_valid_vat_id, normalize_vat_id

FORMAT_CHECK_SOURCE = "stdnum"


@dataclass(frozen=True, slots=True)
class RateRecord:
    """One row of a recorded rate table version."""

    version: str
    kind: str  # rate | saas_taxability
    country: str
    region: str
    tax_type: str | None
    rate_ppm: int | None
    taxability: str | None
    taxable_ppm: int | None
    valid_from: date
    valid_to: date | None
    source_url: str

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


@dataclass(frozen=True, slots=True)
class TaxLineRecord:
    """Which rate one component of one document line used. Credit note rows are
    negative (they reverse tax), invoice and debit note rows carry their own sign."""

    document_kind: str  # invoice | credit_note | debit_note
    document_id: str
    invoice_id: str
    line_id: str
    component_index: int
    currency: str
    line_amount: int
    tax_behavior: str
    line_net: int
    jurisdiction: str
    tax_type: str | None
    rate_ppm: int
    taxable_amount: int
    tax_amount: int
    reason: str
    rate_table_version: str
    tax_engine: str
    tax_point_at: datetime
    recorded_at: datetime
    # Why the engine chose the reason: the rate's source, or the exemption certificate.
    detail: str = ""


def packaged_rate_files() -> tuple[str, str]:
    data = resources.files("tax") / "data"
    return (
        (data / RATES_FILE).read_text(encoding="utf-8"),
        (data / US_SAAS_FILE).read_text(encoding="utf-8"),
    )


def rate_table_recorded(conn: Connection, version: str) -> bool:
    found = conn.execute(
        select(_rate_tables.c.version).where(_rate_tables.c.version == version)
    ).first()
    return found is not None


def record_rate_table(
    conn: Connection, *, at: datetime, rates_csv: str | None = None, us_saas_csv: str | None = None
) -> str:
    """Record a rate table version with all its rows (the packaged files by default);
    returns its version. Recording a version twice records it once."""
    if rates_csv is None or us_saas_csv is None:
        rates_csv, us_saas_csv = packaged_rate_files()
    version = rate_table_from_text(rates_csv, us_saas_csv).version
    if rate_table_recorded(conn, version):
        return version
    rates = parse_rates(rates_csv)
    taxability = parse_taxability(us_saas_csv)
    sources = sorted({r.source_url for r in rates} | {t.source_url for t in taxability})
    retrieved = sorted({r.retrieved_on.isoformat() for r in rates})
    summary: dict[str, Any] = {
        "files": [RATES_FILE, US_SAAS_FILE],
        "rate_rows": len(rates),
        "taxability_rows": len(taxability),
        "countries": len({r.country for r in rates}),
        "retrieved_on": [retrieved[0], retrieved[-1]] if retrieved else [],
        "sources": sources,
    }
    inserted = conn.execute(
        insert_or_ignore(conn, _rate_tables)
        .values(
            version=version,
            row_count=len(rates) + len(taxability),
            source_summary=summary,
            recorded_at=require_aware_utc(at, "at"),
        )
        .on_conflict_do_nothing(index_elements=["version"])
        .returning(_rate_tables.c.version)
    ).first()
    if inserted is None:  # a concurrent transaction recorded it
        return version
    rows = [
        {
            "version": version,
            "kind": "rate",
            "country": r.country,
            "region": r.region,
            "tax_type": r.tax_type.value,
            "rate_ppm": r.rate_ppm,
            "taxability": None,
            "taxable_ppm": None,
            "valid_from": r.valid_from,
            "valid_to": r.valid_to,
            "source_url": r.source_url,
            "retrieved_on": r.retrieved_on,
            "note": r.note,
        }
        for r in rates
    ] + [
        {
            "version": version,
            "kind": "saas_taxability",
            "country": "US",
            "region": t.state,
            "tax_type": TaxType.SALES_TAX.value,
            "rate_ppm": None,
            "taxability": t.taxability.value,
            "taxable_ppm": t.taxable_ppm,
            "valid_from": t.valid_from,
            "valid_to": t.valid_to,
            "source_url": t.source_url,
            "retrieved_on": None,
            "note": t.note,
        }
        for t in taxability
    ]
    conn.execute(insert(_rate_rows), rows)
    return version


def record_vat_check(
    conn: Connection,
    result: VatCheckResult,
    *,
    customer_id: str | None = None,
    invoice_id: str | None = None,
) -> None:
    conn.execute(
        insert(_vat_checks).values(
            customer_id=customer_id,
            invoice_id=invoice_id,
            vat_id=result.vat_id,
            valid=result.valid,
            source=result.source,
            checked_at=require_aware_utc(result.checked_at, "checked_at"),
            consultation_number=result.consultation_number,
            name=result.name,
            address=result.address,
        )
    )


def format_check(vat_id: str, at: datetime) -> VatCheckResult:
    """The offline ``stdnum.eu.vat`` check as a result worth recording."""
    valid = is_valid_vat_id(vat_id)
    return VatCheckResult(
        vat_id=normalize_vat_id(vat_id) if valid else vat_id,
        valid=valid,
        checked_at=at,
        source=FORMAT_CHECK_SOURCE,
    )


_INSERT_TAX_LINES = insert(_tax_lines)


def insert_tax_line_records(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_TAX_LINES, list(rows))


def _latest(rows: Iterable[Any], key: Any) -> list[Any]:
    """The newest record per identity (ids grow with time)."""
    newest: dict[Any, Any] = {}
    for row in sorted(rows, key=lambda r: r.id):
        newest[key(row)] = row
    return list(newest.values())


class ComplianceLedger:
    """Record and read compliance records; one transaction per call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_rate_table(
        self, *, at: datetime, rates_csv: str | None = None, us_saas_csv: str | None = None
    ) -> str:
        with self.engine.begin() as conn:
            return record_rate_table(conn, at=at, rates_csv=rates_csv, us_saas_csv=us_saas_csv)

    def rate_rows(self, version: str) -> list[RateRecord]:
        with self._read() as conn:
            rows = conn.execute(
                select(_rate_rows).where(_rate_rows.c.version == version).order_by(_rate_rows.c.id)
            ).all()
        return [
            RateRecord(
                version=r.version,
                kind=r.kind,
                country=r.country,
                region=r.region,
                tax_type=r.tax_type,
                rate_ppm=None if r.rate_ppm is None else int(r.rate_ppm),
                taxability=r.taxability,
                taxable_ppm=None if r.taxable_ppm is None else int(r.taxable_ppm),
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                source_url=r.source_url,
            )
            for r in rows
        ]

    def rate_table_versions(self) -> list[tuple[str, int, dict[str, Any]]]:
        with self._read() as conn:
            rows = conn.execute(select(_rate_tables).order_by(_rate_tables.c.recorded_at)).all()
        return [(r.version, int(r.row_count), dict(r.source_summary)) for r in rows]

    def record_registration(
        self, registration: Registration, *, at: datetime, note: str = ""
    ) -> None:
        """A registration or nexus change; recording the same jurisdiction and number
        again (e.g. with ``valid_to`` set) supersedes the earlier record."""
        if registration.valid_to is not None and registration.valid_to < registration.valid_from:
            raise ValueError("a registration cannot end before it starts")
        with self.engine.begin() as conn:
            conn.execute(
                insert(_regs).values(
                    jurisdiction=registration.jurisdiction,
                    tax_type=None if registration.tax_type is None else registration.tax_type.value,
                    registration_number=registration.registration_number,
                    valid_from=registration.valid_from,
                    valid_to=registration.valid_to,
                    note=note,
                    recorded_at=require_aware_utc(at, "at"),
                )
            )

    def registrations(self, *, as_recorded_at: datetime | None = None) -> list[Registration]:
        """Current registrations (newest record per jurisdiction and number); with
        ``as_recorded_at``, as they were known at that instant."""
        query = select(_regs)
        if as_recorded_at is not None:
            query = query.where(_regs.c.recorded_at <= require_aware_utc(as_recorded_at, "at"))
        with self._read() as conn:
            rows = conn.execute(query).all()
        latest = _latest(rows, lambda r: (r.jurisdiction, r.registration_number))
        return [
            Registration(
                jurisdiction=r.jurisdiction,
                tax_type=None if r.tax_type is None else TaxType(r.tax_type),
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                registration_number=r.registration_number,
            )
            for r in sorted(latest, key=lambda r: (r.jurisdiction, r.registration_number))
        ]

    def registrations_in_force(self, day: date) -> list[Registration]:
        return [reg for reg in self.registrations() if reg.in_force(day)]

    def record_exemption_certificate(
        self, customer_id: str, certificate: ExemptionCertificate, *, at: datetime
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(_certs).values(
                    customer_id=customer_id,
                    jurisdiction=certificate.jurisdiction,
                    number=certificate.number,
                    valid_from=certificate.valid_from,
                    valid_to=certificate.valid_to,
                    document_ref=certificate.document_ref,
                    recorded_at=require_aware_utc(at, "at"),
                )
            )

    def exemption_certificates(
        self,
        customer_id: str,
        *,
        on: date | None = None,
        known_at: datetime | None = None,
    ) -> tuple[ExemptionCertificate, ...]:
        """The customer's certificates for the tax engine (all of them: the engine
        decides which apply and records the others as evidence); with ``on``, only
        those valid that day; with ``known_at``, as recorded up to that instant, so a
        quote retried later sees what the first attempt saw."""
        query = select(_certs).where(_certs.c.customer_id == customer_id)
        if known_at is not None:
            query = query.where(_certs.c.recorded_at <= require_aware_utc(known_at, "known_at"))
        with self._read() as conn:
            rows = conn.execute(query).all()
        certs = [
            ExemptionCertificate(
                jurisdiction=r.jurisdiction,
                number=r.number,
                valid_from=r.valid_from,
                valid_to=r.valid_to,
                document_ref=r.document_ref,
            )
            for r in sorted(
                _latest(rows, lambda r: (r.jurisdiction, r.number)),
                key=lambda r: (r.jurisdiction, r.number),
            )
        ]
        if on is not None:
            certs = [
                c for c in certs if c.valid_from <= on and (c.valid_to is None or on <= c.valid_to)
            ]
        return tuple(certs)

    def record_vat_check(
        self,
        result: VatCheckResult,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            record_vat_check(conn, result, customer_id=customer_id, invoice_id=invoice_id)

    def check_vat_id(
        self, vat_id: str, *, at: datetime, customer_id: str | None = None
    ) -> VatCheckResult:
        """Run the offline format check and record its result."""
        result = format_check(vat_id, require_aware_utc(at, "at"))
        self.record_vat_check(result, customer_id=customer_id)
        return result

    def vat_checks(self, customer_id: str) -> list[VatCheckResult]:
        with self._read() as conn:
            rows = conn.execute(
                select(_vat_checks)
                .where(_vat_checks.c.customer_id == customer_id)
                .order_by(_vat_checks.c.id)
            ).all()
        return [
            VatCheckResult(
                vat_id=r.vat_id,
                valid=bool(r.valid),
                checked_at=r.checked_at,
                source=r.source,
                consultation_number=r.consultation_number,
                name=r.name,
                address=r.address,
            )
            for r in rows
        ]

    def tax_line_records(
        self, *, invoice_id: str | None = None, document_id: str | None = None
    ) -> list[TaxLineRecord]:
        query = select(_tax_lines).order_by(_tax_lines.c.id)
        if invoice_id is not None:
            query = query.where(_tax_lines.c.invoice_id == invoice_id)
        if document_id is not None:
            query = query.where(_tax_lines.c.document_id == document_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            TaxLineRecord(
                document_kind=r.document_kind,
                document_id=r.document_id,
                invoice_id=r.invoice_id,
                line_id=r.line_id,
                component_index=int(r.component_index),
                currency=r.currency,
                line_amount=int(r.line_amount),
                tax_behavior=r.tax_behavior,
                line_net=int(r.line_net),
                jurisdiction=r.jurisdiction,
                tax_type=r.tax_type,
                rate_ppm=int(r.rate_ppm),
                taxable_amount=int(r.taxable_amount),
                tax_amount=int(r.tax_amount),
                reason=r.reason,
                rate_table_version=r.rate_table_version,
                tax_engine=r.tax_engine,
                tax_point_at=r.tax_point_at,
                recorded_at=r.recorded_at,
                detail=r.detail,
            )
            for r in rows
        ]

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(**READ_ONLY)


def tax_line_row(
    document_kind: str,
    document_id: str,
    invoice_id: str,
    line_id: str,
    index: int,
    currency: str,
    line_amount: int,
    tax_behavior: str,
    line_net: int,
    component: TaxComponent,
    sign: int,
    quote: TaxQuote | None,
    at: datetime,
    *,
    rate_table_version: str | None = None,
    tax_engine: str | None = None,
    tax_point_at: datetime | None = None,
) -> dict[str, Any]:
    """A ``tax_line_records`` row; ``sign`` -1 records a credit note's reversal."""
    return {
        "document_kind": document_kind,
        "document_id": document_id,
        "invoice_id": invoice_id,
        "line_id": line_id,
        "component_index": index,
        "currency": currency,
        "line_amount": sign * line_amount,
        "tax_behavior": tax_behavior,
        "line_net": sign * line_net,
        "jurisdiction": component.jurisdiction,
        "tax_type": None if component.tax_type is None else component.tax_type.value,
        "rate_ppm": component.rate_ppm,
        "taxable_amount": sign * component.taxable_amount,
        "tax_amount": sign * component.tax_amount,
        "reason": component.reason.value,
        "detail": component.detail,
        "rate_table_version": quote.rate_table_version if quote else rate_table_version or "",
        "tax_engine": quote.engine if quote else tax_engine or "",
        "tax_point_at": quote.at if quote else tax_point_at or at,
        "recorded_at": at,
    }
