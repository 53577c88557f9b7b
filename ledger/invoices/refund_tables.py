"""Refunds of invoice payments: one row per refund, made by revision ``0011_refunds_disputes``.

A refund ops ask for is a row ``requested`` (reserving its amount, so two refunds
asked at once cannot together exceed what was paid) before the gateway is called;
it becomes ``recorded`` with the gateway's refund id, its credit note and its ledger
entry, or ``failed`` when the gateway refused it (the amount is free again). A refund
made at the gateway itself (the Stripe dashboard) is inserted ``recorded`` at once.
``refund_id`` is unique: each gateway refund is recorded once, whichever way it came.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Column, ForeignKey, String, Table, Text

from ledger.schema import Base, Id, UTCDateTime

metadata = Base.metadata

REFUND_STATUSES = ("requested", "recorded", "failed")
REFUND_SOURCES = ("ops", "gateway")

invoice_refunds = Table(
    "invoice_refunds",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("invoice_id", String(64), ForeignKey("invoices.id"), nullable=False, index=True),
    Column("refund_id", String(255), unique=True),
    Column("payment_ref", String(200), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reason", String(32), nullable=False),
    Column("note", Text),
    Column("source", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("failure", Text),
    Column("credit_note_id", String(64)),
    Column("ledger_entry_id", Id),
    Column("requested_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime),
    CheckConstraint("amount > 0", name="amount"),
    CheckConstraint("status IN ('requested', 'recorded', 'failed')", name="status"),
    CheckConstraint("source IN ('ops', 'gateway')", name="source"),
    CheckConstraint("status <> 'recorded' OR refund_id IS NOT NULL", name="recorded_ref"),
)
