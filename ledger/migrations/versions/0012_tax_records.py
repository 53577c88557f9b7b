"""Who recorded each registration, certificate and ops note, and the nexus changes.

Revision ID: 0012_tax_records
Revises: 0011_refunds_disputes
Create Date: 2026-12-07

``actor`` on registrations and exemption certificates names who recorded them (ops,
through the API or ``dunwell tax``); rows recorded before it have none.
``compliance_nexus`` holds nexus changes (where the seller has nexus, on what basis,
from when to when), append-only like every compliance table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_tax_records"
down_revision: str | Sequence[str] | None = "0011_refunds_disputes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
WITH_ACTOR = ("compliance_registrations", "compliance_exemption_certificates")
NEW_TABLES = ("compliance_nexus", "invoice_note_actors")


def upgrade() -> None:
    for table in WITH_ACTOR:
        op.add_column(table, sa.Column("actor", sa.String(200), nullable=True))
    op.create_table(
        "compliance_nexus",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("basis", sa.String(16), nullable=False),  # economic | physical
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date()),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_nexus")),
    )
    op.create_table(
        "invoice_note_actors",
        sa.Column("note_id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("note_id", name=op.f("pk_invoice_note_actors")),
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in NEW_TABLES:
        for statement in _sqlite_append_only(table) if sqlite else _pg_append_only(table):
            op.execute(statement)


def _sqlite_append_only(table: str) -> list[str]:
    return [
        f"""
        CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table}
        BEGIN SELECT RAISE(ABORT, 'billing: {op_name} on {table} is refused; rows are append-only'); END
        """
        for op_name in ("UPDATE", "DELETE")
    ]


def _pg_append_only(table: str) -> list[str]:
    # billing_refuse_change() is revision 0003's.
    return [
        f"""
        CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION billing_refuse_change()
        """,
        f"""
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_change()
        """,
    ]


def downgrade() -> None:
    for table in NEW_TABLES:
        op.drop_table(table)
    for table in WITH_ACTOR:
        # Plain ALTER TABLE on both backends: a batch copy would drop SQLite's triggers.
        op.execute(f"ALTER TABLE {table} DROP COLUMN actor")
