"""Recording the seller's registrations and nexus changes and customers' exemption
certificates for ops: each request is checked, then appended to the compliance ledger
with who recorded it, in one transaction; a refused request writes nothing.

Refusals (``TaxRecordRefused.code``): ``invalid_date_range`` (it ends before it
starts), ``unknown_jurisdiction`` (not "EU", an ISO 3166-1 country, or a US state or
Canadian province as "US-TX" / "CA-QC"), ``overlapping_registration`` (another
registration of the same jurisdiction and tax is in force on some of the same days;
recording the same registration number again supersedes it and is no overlap) and
``invalid_field`` (an empty or too long text). Imports only the ledger's own tables
and the pure ``tax`` package.

``also`` on each ``record_*`` runs on the same connection before the commit (the API
writes its audit row there), so the record and what goes with it commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, insert, select, text

from ledger.compliance_tables import compliance_exemption_certificates as _certs
from ledger.compliance_tables import compliance_nexus as _nexus
from ledger.compliance_tables import compliance_registrations as _regs
from ledger.db import READ_ONLY
from ledger.entries import require_aware_utc
from tax import ExemptionCertificate, Registration, TaxType
from tax.places import jurisdiction_known

R = TypeVar("R")
Also = Callable[[Connection, R], None]

NEXUS_BASES = ("economic", "physical")
MAX_ACTOR = 200


class TaxRecordRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class RegistrationRecord:
    id: int
    registration: Registration
    note: str
    actor: str | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    id: int
    customer_id: str
    certificate: ExemptionCertificate
    actor: str | None
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class NexusRecord:
    id: int
    jurisdiction: str
    basis: str
    valid_from: date
    valid_to: date | None
    note: str
    actor: str
    recorded_at: datetime

    def in_force(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


def _text(value: str, field: str, limit: int, *, empty: bool = False) -> str:
    value = value.strip()
    if (not value and not empty) or len(value) > limit:
        raise TaxRecordRefused(
            "invalid_field", f"{field} must be {'' if empty else '1 to '}{limit} characters"
        )
    return value


def _range(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to < valid_from:
        raise TaxRecordRefused(
            "invalid_date_range",
            f"valid_to {valid_to.isoformat()} is before valid_from {valid_from.isoformat()}",
        )


def _jurisdiction(code: str, *, allow_eu: bool) -> str:
    code = code.strip().upper()
    if not jurisdiction_known(code) or (code == "EU" and not allow_eu):
        raise TaxRecordRefused(
            "unknown_jurisdiction",
            f"{code!r} is not a known jurisdiction (an ISO 3166-1 country, US-XX or CA-XX"
            + (', or "EU" for the One-Stop Shop)' if allow_eu else ")"),
        )
    return code


def _overlaps(a_from: date, a_to: date | None, b_from: date, b_to: date | None) -> bool:
    return (b_to is None or a_from <= b_to) and (a_to is None or b_from <= a_to)


def _same_tax(a: str | None, b: str | None) -> bool:
    return a is None or b is None or a == b


def _lock(conn: Connection, table: str) -> None:
    """Serialize writers of ``table`` so two overlapping requests cannot both pass the
    check (SQLite already writes one transaction at a time)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))


def _latest(rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """The newest record per registration number (ids grow with time)."""
    newest: dict[str, Row[Any]] = {}
    for row in sorted(rows, key=lambda r: int(r.id)):
        newest[str(row.registration_number)] = row
    return list(newest.values())


class TaxRecords:
    """Checked writes and plain reads of the records ops keep; one transaction each."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_registration(
        self,
        registration: Registration,
        *,
        actor: str,
        at: datetime,
        note: str = "",
        also: Also[RegistrationRecord] | None = None,
    ) -> RegistrationRecord:
        actor = _text(actor, "actor", MAX_ACTOR)
        note = _text(note, "note", 2000, empty=True)
        number = _text(registration.registration_number, "registration_number", 100)
        jurisdiction = _jurisdiction(registration.jurisdiction, allow_eu=True)
        _range(registration.valid_from, registration.valid_to)
        at = require_aware_utc(at, "at")
        tax_type = None if registration.tax_type is None else registration.tax_type.value
        with self.engine.begin() as conn:
            _lock(conn, "compliance_registrations")
            rows = conn.execute(select(_regs).where(_regs.c.jurisdiction == jurisdiction)).all()
            for other in _latest(rows):
                if (
                    other.registration_number != number
                    and _same_tax(other.tax_type, tax_type)
                    and _overlaps(
                        registration.valid_from,
                        registration.valid_to,
                        other.valid_from,
                        other.valid_to,
                    )
                ):
                    raise TaxRecordRefused(
                        "overlapping_registration",
                        f"registration {other.registration_number} for {jurisdiction} "
                        "is in force on some of the same days",
                    )
            new_id = conn.execute(
                insert(_regs)
                .values(
                    jurisdiction=jurisdiction,
                    tax_type=tax_type,
                    registration_number=number,
                    valid_from=registration.valid_from,
                    valid_to=registration.valid_to,
                    note=note,
                    actor=actor,
                    recorded_at=at,
                )
                .returning(_regs.c.id)
            ).scalar_one()
            recorded = Registration(
                jurisdiction,
                registration.tax_type,
                registration.valid_from,
                registration.valid_to,
                number,
            )
            record = RegistrationRecord(int(new_id), recorded, note, actor, at)
            if also is not None:
                also(conn, record)
        return record

    def registrations(self, *, jurisdiction: str | None = None) -> list[RegistrationRecord]:
        """Every record, oldest first (a later record of the same number supersedes)."""
        query = select(_regs).order_by(_regs.c.id)
        if jurisdiction is not None:
            query = query.where(_regs.c.jurisdiction == jurisdiction.strip().upper())
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            RegistrationRecord(
                int(r.id),
                Registration(
                    r.jurisdiction,
                    None if r.tax_type is None else TaxType(r.tax_type),
                    r.valid_from,
                    r.valid_to,
                    r.registration_number,
                ),
                r.note,
                r.actor,
                r.recorded_at,
            )
            for r in rows
        ]

    def record_certificate(
        self,
        customer_id: str,
        certificate: ExemptionCertificate,
        *,
        actor: str,
        at: datetime,
        also: Also[CertificateRecord] | None = None,
    ) -> CertificateRecord:
        actor = _text(actor, "actor", MAX_ACTOR)
        customer_id = _text(customer_id, "customer_id", 200)
        number = _text(certificate.number, "number", 100)
        document_ref = _text(certificate.document_ref, "document_ref", 2000)
        jurisdiction = _jurisdiction(certificate.jurisdiction, allow_eu=False)
        _range(certificate.valid_from, certificate.valid_to)
        at = require_aware_utc(at, "at")
        recorded = ExemptionCertificate(
            jurisdiction, number, certificate.valid_from, certificate.valid_to, document_ref
        )
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(_certs)
                .values(
                    customer_id=customer_id,
                    jurisdiction=jurisdiction,
                    number=number,
                    valid_from=certificate.valid_from,
                    valid_to=certificate.valid_to,
                    document_ref=document_ref,
                    actor=actor,
                    recorded_at=at,
                )
                .returning(_certs.c.id)
            ).scalar_one()
            record = CertificateRecord(int(new_id), customer_id, recorded, actor, at)
            if also is not None:
                also(conn, record)
        return record

    def certificates(self, *, customer_id: str | None = None) -> list[CertificateRecord]:
        query = select(_certs).order_by(_certs.c.id)
        if customer_id is not None:
            query = query.where(_certs.c.customer_id == customer_id)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            CertificateRecord(
                int(r.id),
                r.customer_id,
                ExemptionCertificate(
                    r.jurisdiction, r.number, r.valid_from, r.valid_to, r.document_ref
                ),
                r.actor,
                r.recorded_at,
            )
            for r in rows
        ]

    def record_nexus(
        self,
        jurisdiction: str,
        *,
        basis: str,
        valid_from: date,
        valid_to: date | None,
        actor: str,
        at: datetime,
        note: str = "",
        also: Also[NexusRecord] | None = None,
    ) -> NexusRecord:
        actor = _text(actor, "actor", MAX_ACTOR)
        note = _text(note, "note", 2000, empty=True)
        code = _jurisdiction(jurisdiction, allow_eu=False)
        if basis not in NEXUS_BASES:
            raise TaxRecordRefused("invalid_field", f"basis must be one of {list(NEXUS_BASES)}")
        _range(valid_from, valid_to)
        at = require_aware_utc(at, "at")
        with self.engine.begin() as conn:
            new_id = conn.execute(
                insert(_nexus)
                .values(
                    jurisdiction=code,
                    basis=basis,
                    valid_from=valid_from,
                    valid_to=valid_to,
                    note=note,
                    actor=actor,
                    recorded_at=at,
                )
                .returning(_nexus.c.id)
            ).scalar_one()
            record = NexusRecord(int(new_id), code, basis, valid_from, valid_to, note, actor, at)
            if also is not None:
                also(conn, record)
        return record

    def nexus(self, *, jurisdiction: str | None = None) -> list[NexusRecord]:
        query = select(_nexus).order_by(_nexus.c.id)
        if jurisdiction is not None:
            query = query.where(_nexus.c.jurisdiction == jurisdiction.strip().upper())
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            NexusRecord(
                int(r.id),
                r.jurisdiction,
                r.basis,
                r.valid_from,
                r.valid_to,
                r.note,
                r.actor,
                r.recorded_at,
            )
            for r in rows
        ]

    def _read(self) -> Connection:
        return self.engine.connect().execution_options(**READ_ONLY)
