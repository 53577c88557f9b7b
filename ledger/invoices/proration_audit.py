"""Proration audit records: every proration computation, append-only, by key.

The subscription workflow hands over ``billing.proration.ProrationAudit.to_record()``
(inputs, outputs, rounding rule) and the taxed lines of the invoice it fed; a key seen
before with the same content returns the stored record, with other content it is
refused. Functions taking a ``Connection`` write in the caller's transaction;
``ProrationAudits`` are the invoice store's calls built on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select

from ledger.db import insert_or_ignore
from ledger.invoices.base import StoreBase
from ledger.invoices.checks import aware, check_key
from ledger.invoices.errors import InvalidInvoiceInput, InvoiceIdempotencyConflict
from ledger.invoices.tables import proration_audits as _audits


@dataclass(frozen=True, slots=True)
class ProrationAuditRecord:
    key: str
    invoice_id: str | None
    rounding_rule: str
    record: dict[str, Any]
    taxed_lines: list[Any] | None
    recorded_at: datetime


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, dates and datetimes as plain JSON values (stable round trip)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    return json.loads(json.dumps(value, default=_iso, sort_keys=True))


def _iso(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def prepare(
    audit_record: Mapping[str, Any],
    *,
    key: str,
    invoice_id: str | None,
    taxed_lines: Sequence[Any] | None,
    at: datetime | None,
) -> ProrationAuditRecord:
    """Validate and normalize before any transaction starts."""
    check_key(key)
    if not isinstance(audit_record, Mapping) or not isinstance(
        audit_record.get("rounding_rule"), str
    ):
        raise InvalidInvoiceInput("audit_record must be a mapping with a rounding_rule")
    return ProrationAuditRecord(
        key=key,
        invoice_id=invoice_id,
        rounding_rule=str(audit_record["rounding_rule"]),
        record=jsonable(dict(audit_record)),
        taxed_lines=None if taxed_lines is None else [jsonable(line) for line in taxed_lines],
        recorded_at=aware(at, "at") if at is not None else datetime.now(UTC),
    )


def store(conn: Connection, audit: ProrationAuditRecord) -> ProrationAuditRecord:
    conn.execute(
        insert_or_ignore(conn, _audits)
        .values(
            idempotency_key=audit.key,
            invoice_id=audit.invoice_id,
            rounding_rule=audit.rounding_rule,
            record=audit.record,
            taxed_lines=audit.taxed_lines,
            recorded_at=audit.recorded_at,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
    )
    row = conn.execute(select(_audits).where(_audits.c.idempotency_key == audit.key)).one()
    stored = _from_row(row)
    if (stored.record, stored.taxed_lines, stored.invoice_id) != (
        audit.record,
        audit.taxed_lines,
        audit.invoice_id,
    ):
        raise InvoiceIdempotencyConflict(f"proration key {audit.key!r} was used differently")
    return stored


def for_invoice(conn: Connection, invoice_id: str) -> list[ProrationAuditRecord]:
    rows = conn.execute(
        select(_audits).where(_audits.c.invoice_id == invoice_id).order_by(_audits.c.id)
    ).all()
    return [_from_row(row) for row in rows]


def _from_row(row: Any) -> ProrationAuditRecord:
    return ProrationAuditRecord(
        key=row.idempotency_key,
        invoice_id=row.invoice_id,
        rounding_rule=row.rounding_rule,
        record=dict(row.record),
        taxed_lines=None if row.taxed_lines is None else list(row.taxed_lines),
        recorded_at=row.recorded_at,
    )


class ProrationAudits(StoreBase):
    def record_proration(
        self,
        audit_record: Mapping[str, Any],
        *,
        key: str,
        invoice_id: str | None = None,
        taxed_lines: Sequence[Any] | None = None,
        at: datetime | None = None,
    ) -> ProrationAuditRecord:
        """Store one proration computation (``ProrationAudit.to_record()``) with the
        taxed lines; append-only and idempotent by ``key``."""
        pending = prepare(
            audit_record, key=key, invoice_id=invoice_id, taxed_lines=taxed_lines, at=at
        )
        return self._transact(lambda conn: store(conn, pending))

    def prorations(self, *, invoice_id: str) -> list[ProrationAuditRecord]:
        return self._read(lambda conn: for_invoice(conn, invoice_id))
