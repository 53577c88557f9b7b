"""Compliance records: table descriptions for queries (``ledger.compliance`` writes them).

The schema is made by revisions ``0003_billing_documents`` and ``0012_tax_records``; every table here is
append-only, and the database refuses updates and deletes (see that revision).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.schema import Base, Id, Json, UTCDateTime

metadata = Base.metadata

# Which rate each document line used: the compliance record an auditor recomputes from.
tax_line_records = Table(
    "tax_line_records",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("document_kind", String(16), nullable=False),  # invoice | credit_note | debit_note
    Column("document_id", String(64), nullable=False, index=True),
    Column("invoice_id", String(64), nullable=False, index=True),
    Column("line_id", String(100), nullable=False),
    Column("component_index", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("line_amount", BigInteger, nullable=False),
    Column("tax_behavior", String(16), nullable=False),
    Column("line_net", BigInteger, nullable=False),
    Column("jurisdiction", String(32), nullable=False),
    Column("tax_type", String(16)),
    Column("rate_ppm", BigInteger, nullable=False),
    Column("taxable_amount", BigInteger, nullable=False),
    Column("tax_amount", BigInteger, nullable=False),
    Column("reason", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("rate_table_version", String(100), nullable=False),
    Column("tax_engine", String(32), nullable=False),
    Column("tax_point_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False, index=True),
)

compliance_rate_tables = Table(
    "compliance_rate_tables",
    metadata,
    Column("version", String(100), primary_key=True),
    Column("row_count", Integer, nullable=False),
    Column("source_summary", Json, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

compliance_rate_rows = Table(
    "compliance_rate_rows",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "version",
        String(100),
        ForeignKey("compliance_rate_tables.version"),
        nullable=False,
        index=True,
    ),
    Column("kind", String(16), nullable=False),  # rate | saas_taxability
    Column("country", String(2), nullable=False),
    Column("region", String(32), nullable=False),
    Column("tax_type", String(16)),
    Column("rate_ppm", BigInteger),
    Column("taxability", String(16)),
    Column("taxable_ppm", BigInteger),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("source_url", Text, nullable=False),
    Column("retrieved_on", Date),
    Column("note", Text, nullable=False),
)

compliance_registrations = Table(
    "compliance_registrations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("jurisdiction", String(32), nullable=False),
    Column("tax_type", String(16)),
    Column("registration_number", String(100), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("note", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(200)),  # who recorded it (revision 0012); None before
)

compliance_exemption_certificates = Table(
    "compliance_exemption_certificates",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(200), nullable=False, index=True),
    Column("jurisdiction", String(32), nullable=False),
    Column("number", String(100), nullable=False),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("document_ref", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("actor", String(200)),  # who recorded it (revision 0012); None before
)

compliance_vat_checks = Table(
    "compliance_vat_checks",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("customer_id", String(200), index=True),
    Column("invoice_id", String(64)),
    Column("vat_id", String(64), nullable=False),
    Column("valid", Boolean, nullable=False),
    Column("source", String(32), nullable=False),  # stdnum (format) | vies | ...
    Column("checked_at", UTCDateTime, nullable=False),
    Column("consultation_number", String(100)),
    Column("name", Text),
    Column("address", Text),
)


compliance_nexus = Table(
    "compliance_nexus",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("jurisdiction", String(32), nullable=False),
    Column("basis", String(16), nullable=False),  # economic | physical
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),
    Column("note", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

# Who issued a credit or debit note through the ops API or ``dunwell invoice``.
invoice_note_actors = Table(
    "invoice_note_actors",
    metadata,
    Column("note_id", String(64), primary_key=True),
    Column("invoice_id", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

APPEND_ONLY_TABLES = (
    "tax_line_records",
    "compliance_rate_tables",
    "compliance_rate_rows",
    "compliance_registrations",
    "compliance_exemption_certificates",
    "compliance_vat_checks",
    "compliance_nexus",
    "invoice_note_actors",
)

# Economic-nexus alerts: one per jurisdiction, level (80 | 100 %) and threshold (by the
# day its data row starts), raised where the seller is not registered (revision 0013).
tax_nexus_alerts = Table(
    "tax_nexus_alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("jurisdiction", String(32), nullable=False),
    Column("level", Integer, nullable=False),
    Column("threshold_from", Date, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("sales", BigInteger, nullable=False),
    Column("transactions", Integer, nullable=False),
    Column("percent", Integer, nullable=False),
    Column("window_start", UTCDateTime, nullable=False),
    Column("window_end", UTCDateTime, nullable=False),
    Column("raised_at", UTCDateTime, nullable=False),
    UniqueConstraint("jurisdiction", "level", "threshold_from"),
)
