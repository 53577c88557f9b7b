"""Billing documents (invoices, notes, payments, write-offs, proration audits): tables.

The schema is made by revision ``0003_billing_documents``, which also installs the
triggers that keep these rows honest (see its docstring). In short:

- ``invoices``: a draft may change or be deleted; once finalized only ``status`` and
  ``status_changed_at`` may change, and only along the allowed transitions;
- ``invoice_lines``: inserted, changed or deleted only while their invoice is a draft;
- ``document_counters``: one row per (issuer, series, year), moving by exactly one;
- every other table here is append-only.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
)

from ledger.schema import Base, Id, Json, UTCDateTime

metadata = Base.metadata

INVOICE_STATUSES = ("draft", "open", "paid", "void", "uncollectible")
# "draft>paid": an invoice whose total is zero or negative is settled at finalization.
ALLOWED_TRANSITIONS = (
    "draft>open",
    "draft>paid",
    "open>paid",
    "open>void",
    "open>uncollectible",
    "uncollectible>paid",
)
# Columns of a finalized invoice that may still change; everything else is frozen.
MUTABLE_INVOICE_COLUMNS = ("status", "status_changed_at")

invoices = Table(
    "invoices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("issuer", String(100), nullable=False),
    Column("customer_id", String(200), nullable=False, index=True),
    Column("subscription_id", String(200), index=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(16), nullable=False),
    Column("number", String(64)),
    Column("period_start", UTCDateTime),
    Column("period_end", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("finalized_at", UTCDateTime),
    Column("status_changed_at", UTCDateTime),
    Column("subtotal", BigInteger),
    Column("tax_total", BigInteger),
    Column("total", BigInteger),
    Column("tax_engine", String(32)),
    Column("rate_table_version", String(100)),
    Column("rounding_rule", String(200)),
    Column("tax_jurisdiction", String(32)),
    Column("tax_quote_at", UTCDateTime),
    Column("customer_country", String(2)),
    Column("customer_region", String(32)),
    Column("customer_vat_id", String(64)),
    Column("customer_name", String(300)),
    Column("customer_address", Text),
    Column("tax_evidence", Json),
    Column("legal_mentions", Json),
    Column("vat_check", Json),
    Column("ledger_entry_id", Id),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", String(64), ForeignKey("invoices.id"), primary_key=True),
    Column("line_id", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("description", String(500), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("plan_id", String(200)),
    Column("period_start", UTCDateTime),
    Column("period_end", UTCDateTime),
    Column("amount", BigInteger, nullable=False),
    Column("tax_behavior", String(16), nullable=False),
    Column("amount_excluding_tax", BigInteger),
    Column("tax_amount", BigInteger),
    Column("amount_including_tax", BigInteger),
)

document_counters = Table(
    "document_counters",
    metadata,
    Column("issuer", String(100), primary_key=True),
    Column("series", String(16), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last_number", BigInteger, nullable=False),
)

invoice_notes = Table(
    "invoice_notes",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),  # credit | debit
    Column("purpose", String(16), nullable=False),  # adjustment | void | rate_change
    Column("issuer", String(100), nullable=False),
    Column("number", String(64), nullable=False),
    Column("invoice_id", String(64), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("customer_id", String(200), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("reason", Text, nullable=False),
    Column("subtotal", BigInteger, nullable=False),
    Column("tax_total", BigInteger, nullable=False),
    Column("total", BigInteger, nullable=False),
    Column("receivable_amount", BigInteger, nullable=False),
    Column("customer_credit_amount", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("ledger_entry_id", Id),
)

invoice_note_lines = Table(
    "invoice_note_lines",
    metadata,
    Column("note_id", String(64), ForeignKey("invoice_notes.id"), primary_key=True),
    Column("invoice_line_id", String(100), primary_key=True),
    Column("amount_excluding_tax", BigInteger, nullable=False),
    Column("tax_amount", BigInteger, nullable=False),
)

invoice_payments = Table(
    "invoice_payments",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("invoice_id", String(64), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("payment_ref", String(200), nullable=False, index=True),
    Column("amount", BigInteger, nullable=False),
    Column("paid_at", UTCDateTime, nullable=False),
    Column("recovery", Boolean, nullable=False),  # paid after a write-off
    Column("ledger_entry_id", Id),
)

invoice_writeoffs = Table(
    "invoice_writeoffs",
    metadata,
    Column("invoice_id", String(64), ForeignKey("invoices.id"), primary_key=True),
    Column("amount", BigInteger, nullable=False),
    Column("written_off_at", UTCDateTime, nullable=False),
    Column("ledger_entry_id", Id),
)

proration_audits = Table(
    "proration_audits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("idempotency_key", String(200), nullable=False, unique=True),
    Column("invoice_id", String(64), index=True),
    Column("rounding_rule", String(200), nullable=False),
    Column("record", Json, nullable=False),
    Column("taxed_lines", Json),
    Column("recorded_at", UTCDateTime, nullable=False),
)

APPEND_ONLY_TABLES = (
    "invoice_notes",
    "invoice_note_lines",
    "invoice_payments",
    "invoice_writeoffs",
    "proration_audits",
)
