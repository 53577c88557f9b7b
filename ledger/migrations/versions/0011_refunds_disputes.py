"""Refunds of invoice payments, disputes and the money disputes moved.

Revision ID: 0011_refunds_disputes
Revises: 0010_gateway_rate
Create Date: 2026-12-07

What each table holds is said in ``ledger.invoices.refund_tables`` and
``ledger.disputes.tables``. A refund's credit note is an ordinary credit note
(purpose ``adjustment``) that the refund row names.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_refunds_disputes"
down_revision: str | Sequence[str] | None = "0010_gateway_rate"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invoice_refunds",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("refund_id", sa.String(255), nullable=True),
        sa.Column("payment_ref", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("failure", sa.Text(), nullable=True),
        sa.Column("credit_note_id", sa.String(64), nullable=True),
        sa.Column("ledger_entry_id", ID, nullable=True),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_refunds")),
        sa.UniqueConstraint("key", name=op.f("uq_invoice_refunds_key")),
        sa.UniqueConstraint("refund_id", name=op.f("uq_invoice_refunds_refund_id")),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_invoice_refunds_invoice_id_invoices")
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_invoice_refunds_amount")),
        sa.CheckConstraint(
            "status IN ('requested', 'recorded', 'failed')", name=op.f("ck_invoice_refunds_status")
        ),
        sa.CheckConstraint("source IN ('ops', 'gateway')", name=op.f("ck_invoice_refunds_source")),
        sa.CheckConstraint(
            "status <> 'recorded' OR refund_id IS NOT NULL",
            name=op.f("ck_invoice_refunds_recorded_ref"),
        ),
    )
    op.create_index("ix_invoice_refunds_invoice_id", "invoice_refunds", ["invoice_id"])
    op.create_table(
        "disputes",
        sa.Column("dispute_id", sa.String(255), nullable=False),
        sa.Column("charge_id", sa.String(255), nullable=False),
        sa.Column("payment_ref", sa.String(200), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(200), nullable=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("opened_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("dispute_id", name=op.f("pk_disputes")),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_disputes_invoice_id_invoices")
        ),
    )
    op.create_index("ix_disputes_invoice_id", "disputes", ["invoice_id"])
    op.create_index("ix_disputes_subscription_id", "disputes", ["subscription_id"])
    op.create_table(
        "dispute_movements",
        sa.Column("txn_id", sa.String(255), nullable=False),
        sa.Column("dispute_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("ledger_entry_id", ID, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("txn_id", name=op.f("pk_dispute_movements")),
        sa.ForeignKeyConstraint(
            ["dispute_id"],
            ["disputes.dispute_id"],
            name=op.f("fk_dispute_movements_dispute_id_disputes"),
        ),
    )
    op.create_index("ix_dispute_movements_dispute_id", "dispute_movements", ["dispute_id"])


def downgrade() -> None:
    op.drop_index("ix_dispute_movements_dispute_id", table_name="dispute_movements")
    op.drop_table("dispute_movements")
    op.drop_index("ix_disputes_subscription_id", table_name="disputes")
    op.drop_index("ix_disputes_invoice_id", table_name="disputes")
    op.drop_table("disputes")
    op.drop_index("ix_invoice_refunds_invoice_id", table_name="invoice_refunds")
    op.drop_table("invoice_refunds")
