"""Billing documents (invoices, credit and debit notes, payments) and compliance records.

Revision ID: 0003_billing_documents
Revises: 0002_gateway_events
Create Date: 2026-11-25

Invariants the database enforces (PostgreSQL and SQLite triggers):

- a finalized invoice (status other than ``draft``) changes only its ``status`` and
  ``status_changed_at``, and the status only along ALLOWED_TRANSITIONS;
- invoice lines are inserted, updated or deleted only while their invoice is a draft;
- an invoice is deleted only while it is a draft;
- a number is assigned exactly when the invoice leaves draft (CHECK), unique per issuer;
- ``document_counters.last_number`` only ever moves up by one and rows are never
  deleted, so a number, once committed, is never issued twice or skipped;
- notes, note lines, payments, write-offs, tax line records, proration audits and every
  ``compliance_*`` table are append-only (UPDATE and DELETE refused).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_billing_documents"
down_revision: str | Sequence[str] | None = "0002_gateway_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

STATUSES = ("draft", "open", "paid", "void", "uncollectible")
ALLOWED_TRANSITIONS = (
    "draft>open",
    "draft>paid",
    "open>paid",
    "open>void",
    "open>uncollectible",
    "uncollectible>paid",
)
MUTABLE_INVOICE_COLUMNS = ("status", "status_changed_at")
APPEND_ONLY_TABLES = (
    "invoice_notes",
    "invoice_note_lines",
    "invoice_payments",
    "invoice_writeoffs",
    "tax_line_records",
    "proration_audits",
    "compliance_rate_tables",
    "compliance_rate_rows",
    "compliance_registrations",
    "compliance_exemption_certificates",
    "compliance_vat_checks",
)


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _pk(table: str, *columns: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint(*columns, name=f"pk_{table}")


def _invoice_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("issuer", sa.String(100), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("subscription_id", sa.String(200)),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("number", sa.String(64)),
        sa.Column("period_start", TS),
        sa.Column("period_end", TS),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finalized_at", TS),
        sa.Column("status_changed_at", TS),
        sa.Column("subtotal", sa.BigInteger()),
        sa.Column("tax_total", sa.BigInteger()),
        sa.Column("total", sa.BigInteger()),
        sa.Column("tax_engine", sa.String(32)),
        sa.Column("rate_table_version", sa.String(100)),
        sa.Column("rounding_rule", sa.String(200)),
        sa.Column("tax_jurisdiction", sa.String(32)),
        sa.Column("tax_quote_at", TS),
        sa.Column("customer_country", sa.String(2)),
        sa.Column("customer_region", sa.String(32)),
        sa.Column("customer_vat_id", sa.String(64)),
        sa.Column("customer_name", sa.String(300)),
        sa.Column("customer_address", sa.Text()),
        sa.Column("tax_evidence", JSON),
        sa.Column("legal_mentions", JSON),
        sa.Column("vat_check", JSON),
        sa.Column("ledger_entry_id", ID),
    ]


def _frozen_invoice_columns() -> list[str]:
    return [c.name for c in _invoice_columns() if c.name not in MUTABLE_INVOICE_COLUMNS]


def _create_tables() -> None:
    op.create_table(
        "invoices",
        *_invoice_columns(),
        _pk("invoices", "id"),
        sa.UniqueConstraint("idempotency_key", name="uq_invoices_idempotency_key"),
        sa.UniqueConstraint("issuer", "number", name="uq_invoices_issuer_number"),
        sa.CheckConstraint(f"status IN {_in(STATUSES)}", name="ck_invoices_status"),
        sa.CheckConstraint(
            "(status = 'draft') = (number IS NULL)", name="ck_invoices_number_when_final"
        ),
        sa.CheckConstraint(
            "status = 'draft' OR (total IS NOT NULL AND finalized_at IS NOT NULL)",
            name="ck_invoices_amounts_when_final",
        ),
    )
    op.create_index("ix_invoices_customer_id", "invoices", ["customer_id"])
    op.create_index("ix_invoices_subscription_id", "invoices", ["subscription_id"])
    op.create_index("ix_invoices_finalized_at", "invoices", ["finalized_at"])

    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("plan_id", sa.String(200)),
        sa.Column("period_start", TS),
        sa.Column("period_end", TS),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_behavior", sa.String(16), nullable=False),
        sa.Column("amount_excluding_tax", sa.BigInteger()),
        sa.Column("tax_amount", sa.BigInteger()),
        sa.Column("amount_including_tax", sa.BigInteger()),
        _pk("invoice_lines", "invoice_id", "line_id"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_lines_invoice_id_invoices"
        ),
        sa.CheckConstraint(
            "kind IN ('subscription', 'proration_credit', 'proration_charge', 'one_off')",
            name="ck_invoice_lines_kind",
        ),
        sa.CheckConstraint(
            "tax_behavior IN ('exclusive', 'inclusive')", name="ck_invoice_lines_tax_behavior"
        ),
    )

    op.create_table(
        "document_counters",
        sa.Column("issuer", sa.String(100), nullable=False),
        sa.Column("series", sa.String(16), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_number", sa.BigInteger(), nullable=False),
        _pk("document_counters", "issuer", "series", "year"),
        sa.CheckConstraint("last_number > 0", name="ck_document_counters_positive"),
    )

    op.create_table(
        "invoice_notes",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(100), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("tax_total", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("receivable_amount", sa.BigInteger(), nullable=False),
        sa.Column("customer_credit_amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ledger_entry_id", ID),
        _pk("invoice_notes", "id"),
        sa.UniqueConstraint("idempotency_key", name="uq_invoice_notes_idempotency_key"),
        sa.UniqueConstraint("issuer", "number", name="uq_invoice_notes_issuer_number"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_notes_invoice_id_invoices"
        ),
        sa.CheckConstraint("kind IN ('credit', 'debit')", name="ck_invoice_notes_kind"),
        sa.CheckConstraint(
            "purpose IN ('adjustment', 'void', 'rate_change')", name="ck_invoice_notes_purpose"
        ),
        sa.CheckConstraint(
            "receivable_amount >= 0 AND customer_credit_amount >= 0",
            name="ck_invoice_notes_split",
        ),
    )
    op.create_index("ix_invoice_notes_invoice_id", "invoice_notes", ["invoice_id"])
    op.create_index("ix_invoice_notes_customer_id", "invoice_notes", ["customer_id"])

    op.create_table(
        "invoice_note_lines",
        sa.Column("note_id", sa.String(64), nullable=False),
        sa.Column("invoice_line_id", sa.String(100), nullable=False),
        sa.Column("amount_excluding_tax", sa.BigInteger(), nullable=False),
        sa.Column("tax_amount", sa.BigInteger(), nullable=False),
        _pk("invoice_note_lines", "note_id", "invoice_line_id"),
        sa.ForeignKeyConstraint(
            ["note_id"], ["invoice_notes.id"], name="fk_invoice_note_lines_note_id_invoice_notes"
        ),
    )

    op.create_table(
        "invoice_payments",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("payment_ref", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", TS, nullable=False),
        sa.Column("recovery", sa.Boolean(), nullable=False),
        sa.Column("ledger_entry_id", ID),
        _pk("invoice_payments", "id"),
        sa.UniqueConstraint("idempotency_key", name="uq_invoice_payments_idempotency_key"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_payments_invoice_id_invoices"
        ),
        sa.CheckConstraint("amount > 0", name="ck_invoice_payments_amount"),
    )
    op.create_index("ix_invoice_payments_invoice_id", "invoice_payments", ["invoice_id"])

    op.create_table(
        "invoice_writeoffs",
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("written_off_at", TS, nullable=False),
        sa.Column("ledger_entry_id", ID),
        _pk("invoice_writeoffs", "invoice_id"),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name="fk_invoice_writeoffs_invoice_id_invoices"
        ),
    )

    op.create_table(
        "tax_line_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("document_kind", sa.String(16), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("invoice_id", sa.String(64), nullable=False),
        sa.Column("line_id", sa.String(100), nullable=False),
        sa.Column("component_index", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("line_amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_behavior", sa.String(16), nullable=False),
        sa.Column("line_net", sa.BigInteger(), nullable=False),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("tax_type", sa.String(16)),
        sa.Column("rate_ppm", sa.BigInteger(), nullable=False),
        sa.Column("taxable_amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("rate_table_version", sa.String(100), nullable=False),
        sa.Column("tax_engine", sa.String(32), nullable=False),
        sa.Column("tax_point_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        _pk("tax_line_records", "id"),
        sa.UniqueConstraint(
            "document_id", "line_id", "component_index", name="uq_tax_line_records_document_id"
        ),
        sa.CheckConstraint(
            "document_kind IN ('invoice', 'credit_note', 'debit_note')",
            name="ck_tax_line_records_document_kind",
        ),
    )
    op.create_index("ix_tax_line_records_invoice_id", "tax_line_records", ["invoice_id"])
    op.create_index("ix_tax_line_records_recorded_at", "tax_line_records", ["recorded_at"])

    op.create_table(
        "proration_audits",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("invoice_id", sa.String(64)),
        sa.Column("rounding_rule", sa.String(200), nullable=False),
        sa.Column("record", JSON, nullable=False),
        sa.Column("taxed_lines", JSON),
        sa.Column("recorded_at", TS, nullable=False),
        _pk("proration_audits", "id"),
        sa.UniqueConstraint("idempotency_key", name="uq_proration_audits_idempotency_key"),
    )
    op.create_index("ix_proration_audits_invoice_id", "proration_audits", ["invoice_id"])

    op.create_table(
        "compliance_rate_tables",
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("source_summary", JSON, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        _pk("compliance_rate_tables", "version"),
    )
    op.create_table(
        "compliance_rate_rows",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("tax_type", sa.String(16)),
        sa.Column("rate_ppm", sa.BigInteger()),
        sa.Column("taxability", sa.String(16)),
        sa.Column("taxable_ppm", sa.BigInteger()),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date()),
        sa.Column("source_url", sa.Text(), nullable=False),
        sa.Column("retrieved_on", sa.Date()),
        sa.Column("note", sa.Text(), nullable=False),
        _pk("compliance_rate_rows", "id"),
        sa.ForeignKeyConstraint(
            ["version"],
            ["compliance_rate_tables.version"],
            name="fk_compliance_rate_rows_version_compliance_rate_tables",
        ),
        sa.CheckConstraint(
            "kind IN ('rate', 'saas_taxability')", name="ck_compliance_rate_rows_kind"
        ),
    )
    op.create_index("ix_compliance_rate_rows_version", "compliance_rate_rows", ["version"])

    op.create_table(
        "compliance_registrations",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("tax_type", sa.String(16)),
        sa.Column("registration_number", sa.String(100), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date()),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        _pk("compliance_registrations", "id"),
    )
    op.create_table(
        "compliance_exemption_certificates",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("number", sa.String(100), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date()),
        sa.Column("document_ref", sa.Text(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        _pk("compliance_exemption_certificates", "id"),
    )
    op.create_index(
        "ix_compliance_exemption_certificates_customer_id",
        "compliance_exemption_certificates",
        ["customer_id"],
    )
    op.create_table(
        "compliance_vat_checks",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.String(200)),
        sa.Column("invoice_id", sa.String(64)),
        sa.Column("vat_id", sa.String(64), nullable=False),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("checked_at", TS, nullable=False),
        sa.Column("consultation_number", sa.String(100)),
        sa.Column("name", sa.Text()),
        sa.Column("address", sa.Text()),
        _pk("compliance_vat_checks", "id"),
    )
    op.create_index(
        "ix_compliance_vat_checks_customer_id", "compliance_vat_checks", ["customer_id"]
    )


def _pg_statements() -> list[str]:
    transitions = _in(ALLOWED_TRANSITIONS)
    mutable = " - ".join(f"'{c}'" for c in MUTABLE_INVOICE_COLUMNS)
    statements = [
        """
        CREATE FUNCTION billing_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'billing: % on % is refused; these rows are append-only',
                TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
        END
        $$
        """,
        f"""
        CREATE FUNCTION billing_guard_invoice() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                IF OLD.status <> 'draft' THEN
                    RAISE EXCEPTION 'billing: invoice % is finalized and cannot be deleted',
                        OLD.id USING ERRCODE = 'restrict_violation';
                END IF;
                RETURN OLD;
            END IF;
            IF OLD.status <> 'draft'
               AND (to_jsonb(NEW) - {mutable}) IS DISTINCT FROM (to_jsonb(OLD) - {mutable}) THEN
                RAISE EXCEPTION 'billing: invoice % is finalized; its content is frozen', OLD.id
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF NEW.status <> OLD.status AND (OLD.status || '>' || NEW.status) NOT IN {transitions} THEN
                RAISE EXCEPTION 'billing: invoice % cannot go from % to %',
                    OLD.id, OLD.status, NEW.status USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """,
        """
        CREATE FUNCTION billing_guard_invoice_line() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            parent text;
        BEGIN
            SELECT status INTO parent FROM invoices
             WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
            IF parent IS DISTINCT FROM 'draft' AND parent IS NOT NULL THEN
                RAISE EXCEPTION 'billing: % of a line of a finalized invoice is refused', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF TG_OP = 'UPDATE' AND OLD.invoice_id <> NEW.invoice_id THEN
                RAISE EXCEPTION 'billing: a line cannot move to another invoice'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END
        $$
        """,
        """
        CREATE FUNCTION billing_guard_counter() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' OR NEW.last_number <> OLD.last_number + 1
               OR NEW.issuer <> OLD.issuer OR NEW.series <> OLD.series OR NEW.year <> OLD.year THEN
                RAISE EXCEPTION 'billing: document counters only move up by one'
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END
        $$
        """,
        """
        CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices
        FOR EACH ROW EXECUTE FUNCTION billing_guard_invoice()
        """,
        """
        CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
        FOR EACH ROW EXECUTE FUNCTION billing_guard_invoice_line()
        """,
        """
        CREATE TRIGGER document_counters_guard BEFORE UPDATE OR DELETE ON document_counters
        FOR EACH ROW EXECUTE FUNCTION billing_guard_counter()
        """,
    ]
    for table in ("invoices", "invoice_lines", "document_counters", *APPEND_ONLY_TABLES):
        statements.append(
            f"""
            CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
            FOR EACH STATEMENT EXECUTE FUNCTION billing_refuse_change()
            """
        )
    for table in APPEND_ONLY_TABLES:
        statements.append(
            f"""
            CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
            FOR EACH ROW EXECUTE FUNCTION billing_refuse_change()
            """
        )
    return statements


def _sqlite_statements() -> list[str]:
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _frozen_invoice_columns())
    parent_final = "(SELECT status FROM invoices WHERE id = {row}.invoice_id) <> 'draft'"
    statements = [
        f"""
        CREATE TRIGGER invoices_frozen BEFORE UPDATE ON invoices
        WHEN OLD.status <> 'draft' AND ({changed})
        BEGIN SELECT RAISE(ABORT, 'billing: invoice is finalized; its content is frozen'); END
        """,
        f"""
        CREATE TRIGGER invoices_transition BEFORE UPDATE OF status ON invoices
        WHEN NEW.status <> OLD.status
             AND (OLD.status || '>' || NEW.status) NOT IN {_in(ALLOWED_TRANSITIONS)}
        BEGIN SELECT RAISE(ABORT, 'billing: invoice status transition refused'); END
        """,
        """
        CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices WHEN OLD.status <> 'draft'
        BEGIN SELECT RAISE(ABORT, 'billing: a finalized invoice cannot be deleted'); END
        """,
        f"""
        CREATE TRIGGER invoice_lines_no_insert BEFORE INSERT ON invoice_lines
        WHEN {parent_final.format(row="NEW")}
        BEGIN SELECT RAISE(ABORT, 'billing: INSERT of a line of a finalized invoice is refused'); END
        """,
        f"""
        CREATE TRIGGER invoice_lines_no_update BEFORE UPDATE ON invoice_lines
        WHEN {parent_final.format(row="OLD")} OR NEW.invoice_id IS NOT OLD.invoice_id
        BEGIN SELECT RAISE(ABORT, 'billing: UPDATE of a line of a finalized invoice is refused'); END
        """,
        f"""
        CREATE TRIGGER invoice_lines_no_delete BEFORE DELETE ON invoice_lines
        WHEN {parent_final.format(row="OLD")}
        BEGIN SELECT RAISE(ABORT, 'billing: DELETE of a line of a finalized invoice is refused'); END
        """,
        """
        CREATE TRIGGER document_counters_step BEFORE UPDATE ON document_counters
        WHEN NEW.last_number <> OLD.last_number + 1 OR NEW.issuer IS NOT OLD.issuer
             OR NEW.series IS NOT OLD.series OR NEW.year IS NOT OLD.year
        BEGIN SELECT RAISE(ABORT, 'billing: document counters only move up by one'); END
        """,
        """
        CREATE TRIGGER document_counters_no_delete BEFORE DELETE ON document_counters
        BEGIN SELECT RAISE(ABORT, 'billing: document counters are never deleted'); END
        """,
    ]
    for table in APPEND_ONLY_TABLES:
        for op_name in ("UPDATE", "DELETE"):
            statements.append(
                f"""
                CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table}
                BEGIN SELECT RAISE(ABORT, 'billing: {op_name} on {table} is refused; rows are append-only'); END
                """
            )
    return statements


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _create_tables()
    for statement in _sqlite_statements() if sqlite else _pg_statements():
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in (
        "compliance_vat_checks",
        "compliance_exemption_certificates",
        "compliance_registrations",
        "compliance_rate_rows",
        "compliance_rate_tables",
        "proration_audits",
        "tax_line_records",
        "invoice_writeoffs",
        "invoice_payments",
        "invoice_note_lines",
        "invoice_notes",
        "document_counters",
        "invoice_lines",
        "invoices",
    ):
        op.drop_table(table)
    if not sqlite:
        for function in (
            "billing_refuse_change",
            "billing_guard_invoice",
            "billing_guard_invoice_line",
            "billing_guard_counter",
        ):
            op.execute(f"DROP FUNCTION {function}()")
