"""Reconciliation: the exceptions queue, settlement lines and payout runs.

Revision ID: 0008_reconciliation
Revises: 0007_notification_dismissal
Create Date: 2026-12-07

What each table holds is said in ``ledger.reconciliation.tables``. Exception actions
are append-only (refused by the database on UPDATE and DELETE).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_reconciliation"
down_revision: str | Sequence[str] | None = "0007_notification_dismissal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")

CLASSES = (
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
)
STATUSES = ("open", "acknowledged", "resolved", "written_off", "ignored")
RUN_STATUSES = ("running", "reconciled", "exceptions", "waiting")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_PG_APPEND_ONLY = """
CREATE FUNCTION reconciliation_actions_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'reconciliation_exception_actions rows are append-only';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER reconciliation_actions_append_only
BEFORE UPDATE OR DELETE ON reconciliation_exception_actions
FOR EACH ROW EXECUTE FUNCTION reconciliation_actions_append_only();
"""

_SQLITE_APPEND_ONLY = [
    f"""
CREATE TRIGGER reconciliation_actions_no_{what}
BEFORE {what.upper()} ON reconciliation_exception_actions
BEGIN SELECT RAISE(ABORT, 'reconciliation_exception_actions rows are append-only'); END
"""
    for what in ("update", "delete")
]


def upgrade() -> None:
    op.create_table(
        "reconciliation_exceptions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("class", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payout_id", sa.String(255), nullable=True),
        sa.Column("gateway_ref", sa.String(255), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=True),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("adjusting_entry_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_exceptions")),
        sa.UniqueConstraint("key", name=op.f("uq_reconciliation_exceptions_key")),
        sa.ForeignKeyConstraint(
            ["adjusting_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_reconciliation_exceptions_adjusting_entry_id_ledger_entries"),
        ),
        sa.CheckConstraint(
            _in('"class"', CLASSES), name=op.f("ck_reconciliation_exceptions_class")
        ),
        sa.CheckConstraint(
            _in("status", STATUSES), name=op.f("ck_reconciliation_exceptions_status")
        ),
        sa.CheckConstraint(
            "status <> 'resolved' OR adjusting_entry_id IS NOT NULL",
            name=op.f("ck_reconciliation_exceptions_resolved_entry"),
        ),
    )
    op.create_index(
        "ix_reconciliation_exceptions_status_id", "reconciliation_exceptions", ["status", "id"]
    )
    op.create_index(
        "ix_reconciliation_exceptions_payout_id", "reconciliation_exceptions", ["payout_id"]
    )
    op.create_table(
        "reconciliation_exception_actions",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("exception_id", ID, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reconciliation_exception_actions")),
        sa.ForeignKeyConstraint(
            ["exception_id"],
            ["reconciliation_exceptions.id"],
            name=op.f("fk_reconciliation_exception_actions_exception_id_reconciliation_exceptions"),
        ),
    )
    op.create_index(
        "ix_reconciliation_exception_actions_exception_id",
        "reconciliation_exception_actions",
        ["exception_id"],
    )
    op.create_table(
        "settlement_lines",
        sa.Column("txn_id", sa.String(255), nullable=False),
        sa.Column("payout_id", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("reporting_category", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(255), nullable=True),
        sa.Column("ledger_ref", sa.String(255), nullable=True),
        sa.Column("source_amount", sa.BigInteger(), nullable=True),
        sa.Column("source_currency", sa.String(3), nullable=True),
        sa.Column("created", TS, nullable=False),
        sa.Column("available_on", TS, nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("classes", sa.String(300), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("txn_id", name=op.f("pk_settlement_lines")),
    )
    op.create_index("ix_settlement_lines_payout_id", "settlement_lines", ["payout_id"])
    op.create_index("ix_settlement_lines_ledger_ref", "settlement_lines", ["ledger_ref"])
    op.create_table(
        "reconciliation_runs",
        sa.Column("payout_id", sa.String(255), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("payout_status", sa.String(16), nullable=False),
        sa.Column("arrival_date", TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("report", JSON, nullable=True),
        sa.Column("pages", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("completed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("payout_id", name=op.f("pk_reconciliation_runs")),
        sa.CheckConstraint(_in("status", RUN_STATUSES), name=op.f("ck_reconciliation_runs_status")),
    )
    op.create_index("ix_reconciliation_runs_arrival_date", "reconciliation_runs", ["arrival_date"])
    # The matcher looks ledger payments up by the gateway's payment intent id.
    op.create_index("ix_invoice_payments_payment_ref", "invoice_payments", ["payment_ref"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(_PG_APPEND_ONLY)
    else:
        for statement in _SQLITE_APPEND_ONLY:
            op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER IF EXISTS reconciliation_actions_append_only "
            "ON reconciliation_exception_actions"
        )
        op.execute("DROP FUNCTION IF EXISTS reconciliation_actions_append_only()")
    op.drop_index("ix_invoice_payments_payment_ref", table_name="invoice_payments")
    op.drop_index("ix_reconciliation_runs_arrival_date", table_name="reconciliation_runs")
    op.drop_table("reconciliation_runs")
    op.drop_index("ix_settlement_lines_ledger_ref", table_name="settlement_lines")
    op.drop_index("ix_settlement_lines_payout_id", table_name="settlement_lines")
    op.drop_table("settlement_lines")
    op.drop_index(
        "ix_reconciliation_exception_actions_exception_id",
        table_name="reconciliation_exception_actions",
    )
    op.drop_table("reconciliation_exception_actions")
    op.drop_index("ix_reconciliation_exceptions_payout_id", table_name="reconciliation_exceptions")
    op.drop_index("ix_reconciliation_exceptions_status_id", table_name="reconciliation_exceptions")
    op.drop_table("reconciliation_exceptions")
