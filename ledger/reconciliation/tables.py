"""Reconciliation tables: the exceptions queue, settlement lines and payout runs.

The schema is made by revision ``0008_reconciliation``.

- ``reconciliation_exceptions``: one row per finding key; ``status`` moves
  open → acknowledged → resolved | written_off | ignored (open may also close
  directly), by ``ledger.reconciliation.exceptions``; a resolved exception names the
  adjusting entry that corrected the ledger;
- ``reconciliation_exception_actions``: append-only, who did what to an exception, when;
- ``settlement_lines``: each gateway balance transaction of a reconciled payout, once
  per transaction id, with the matcher's verdict;
- ``reconciliation_runs``: one row per payout: its gateway state, the run's state and
  its report.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from ledger.schema import Base, Id, Json, UTCDateTime

metadata = Base.metadata

EXCEPTION_CLASSES = (
    "missing_in_ledger",
    "missing_at_gateway",
    "amount",
    "currency",
    "fee",
    "status",
    "unsettled_aged",
    "duplicate",
    "payout_total",
    "payout_failed",
    "unknown_type",
    "unattributed_fee",
    "clearing_drift",
    "attribution",  # revision 0009_attribution_exceptions
)
EXCEPTION_STATUSES = ("open", "acknowledged", "resolved", "written_off", "ignored")
RUN_STATUSES = ("running", "reconciled", "exceptions", "waiting")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


reconciliation_exceptions = Table(
    "reconciliation_exceptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("class", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payout_id", String(255)),
    Column("gateway_ref", String(255)),
    Column("currency", String(3)),
    Column("amount", BigInteger),
    Column("evidence", Json, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("opened_by", String(200), nullable=False),
    Column("acknowledged_at", UTCDateTime),
    Column("acknowledged_by", String(200)),
    Column("closed_at", UTCDateTime),
    Column("closed_by", String(200)),
    Column("note", Text),
    Column("adjusting_entry_id", Id, ForeignKey("ledger_entries.id")),
    CheckConstraint(_in('"class"', EXCEPTION_CLASSES), name="class"),
    CheckConstraint(_in("status", EXCEPTION_STATUSES), name="status"),
    CheckConstraint(
        "status <> 'resolved' OR adjusting_entry_id IS NOT NULL", name="resolved_entry"
    ),
    Index("ix_reconciliation_exceptions_status_id", "status", "id"),
    Index("ix_reconciliation_exceptions_payout_id", "payout_id"),
)

reconciliation_exception_actions = Table(
    "reconciliation_exception_actions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "exception_id",
        Id,
        ForeignKey("reconciliation_exceptions.id"),
        nullable=False,
        index=True,
    ),
    Column("action", String(32), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("note", Text),
)

settlement_lines = Table(
    "settlement_lines",
    metadata,
    Column("txn_id", String(255), primary_key=True),
    Column("payout_id", String(255)),
    Column("kind", String(16), nullable=False),
    Column("type", String(64), nullable=False),
    Column("reporting_category", String(64), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("fee", BigInteger, nullable=False),
    Column("net", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("source", String(255)),
    Column("ledger_ref", String(255)),
    Column("source_amount", BigInteger),
    Column("source_currency", String(3)),
    Column("created", UTCDateTime, nullable=False),
    Column("available_on", UTCDateTime, nullable=False),
    Column("matched", Boolean, nullable=False),
    Column("classes", String(300), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_settlement_lines_payout_id", "payout_id"),
    Index("ix_settlement_lines_ledger_ref", "ledger_ref"),
)

reconciliation_runs = Table(
    "reconciliation_runs",
    metadata,
    Column("payout_id", String(255), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("payout_status", String(16), nullable=False),
    Column("arrival_date", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False),
    Column("report", Json),
    Column("pages", Integer, nullable=False, server_default="0"),
    Column("started_at", UTCDateTime, nullable=False),
    Column("completed_at", UTCDateTime),
    CheckConstraint(_in("status", RUN_STATUSES), name="status"),
    Index("ix_reconciliation_runs_arrival_date", "arrival_date"),
)
