"""Double-entry ledger: accounts, journal entries, postings and their invariants.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-25

Invariants the database enforces (not only Python):

- an entry's postings sum to zero per currency, and an entry has exactly
  ``posting_count`` postings: PostgreSQL checks both in a DEFERRABLE INITIALLY DEFERRED
  constraint trigger at commit. SQLite has no deferred triggers, so each entry is
  *sealed* by a row in ``ledger_entry_seals`` whose insert trigger checks the
  postings; ``ledger_entries.id`` references the seal through a deferred foreign key,
  so an entry committed without a seal fails at COMMIT;
- no posting joins an entry that already has all its postings;
- a posting's currency is its account's (composite foreign key on (id, currency));
- entries, postings and seals are never updated or deleted; an account's code, type,
  currency and owner never change (its ``balance`` does);
- an entry is reversed at most once (UNIQUE reverses_entry_id).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001_ledger"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
METADATA_DB_LIMIT = 16384  # characters; the Python limit (4096 bytes) is stricter

IMMUTABLE_TABLES = ("ledger_entries", "ledger_postings")

PG_FUNCTIONS = [
    """
    CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'ledger: % on % is refused; journal rows are immutable',
            TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    """
    CREATE FUNCTION ledger_check_entry() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        found integer;
        balanced boolean;
    BEGIN
        SELECT coalesce(sum(n), 0), coalesce(bool_and(total = 0), true)
          INTO found, balanced
          FROM (SELECT count(*) AS n, sum(amount) AS total
                  FROM ledger_postings WHERE entry_id = NEW.id GROUP BY currency) per_currency;
        IF found <> NEW.posting_count THEN
            RAISE EXCEPTION 'ledger entry % has % postings, expected %',
                NEW.id, found, NEW.posting_count USING ERRCODE = 'check_violation';
        END IF;
        IF NOT balanced THEN
            RAISE EXCEPTION 'ledger entry % does not sum to zero per currency', NEW.id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION ledger_guard_posting() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF (SELECT count(*) FROM ledger_postings WHERE entry_id = NEW.entry_id)
           >= (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id) THEN
            RAISE EXCEPTION 'ledger entry % already has all its postings', NEW.entry_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END
    $$
    """,
]

PG_TRIGGERS = [
    *(
        f"""
        CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change()
        """
        for table in IMMUTABLE_TABLES
    ),
    *(
        f"""
        CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change()
        """
        for table in IMMUTABLE_TABLES
    ),
    """
    CREATE CONSTRAINT TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_check_entry()
    """,
    """
    CREATE TRIGGER ledger_postings_guard BEFORE INSERT ON ledger_postings
    FOR EACH ROW EXECUTE FUNCTION ledger_guard_posting()
    """,
    """
    CREATE TRIGGER ledger_accounts_identity BEFORE UPDATE ON ledger_accounts
    FOR EACH ROW WHEN (
        OLD.id <> NEW.id OR OLD.code <> NEW.code OR OLD.type <> NEW.type
        OR OLD.currency <> NEW.currency OR OLD.customer_id IS DISTINCT FROM NEW.customer_id
    ) EXECUTE FUNCTION ledger_refuse_change()
    """,
]

SQLITE_TRIGGERS = [
    *(
        f"""
        CREATE TRIGGER {table}_no_{op_name.lower()} BEFORE {op_name} ON {table}
        BEGIN SELECT RAISE(ABORT, 'ledger: {op_name} on {table} is refused; journal rows are immutable'); END
        """
        for table in (*IMMUTABLE_TABLES, "ledger_entry_seals")
        for op_name in ("UPDATE", "DELETE")
    ),
    """
    CREATE TRIGGER ledger_entry_seals_check AFTER INSERT ON ledger_entry_seals
    BEGIN
        SELECT RAISE(ABORT, 'ledger entry postings differ from its posting_count')
        WHERE (SELECT count(*) FROM ledger_postings WHERE entry_id = NEW.entry_id)
              <> (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id);
        SELECT RAISE(ABORT, 'ledger entry does not sum to zero per currency')
        WHERE EXISTS (SELECT 1 FROM ledger_postings WHERE entry_id = NEW.entry_id
                      GROUP BY currency HAVING sum(amount) <> 0);
    END
    """,
    """
    CREATE TRIGGER ledger_postings_guard BEFORE INSERT ON ledger_postings
    WHEN EXISTS (SELECT 1 FROM ledger_entry_seals WHERE entry_id = NEW.entry_id)
         OR (SELECT count(*) FROM ledger_postings WHERE entry_id = NEW.entry_id)
            >= (SELECT posting_count FROM ledger_entries WHERE id = NEW.entry_id)
    BEGIN SELECT RAISE(ABORT, 'ledger entry already has all its postings'); END
    """,
    """
    CREATE TRIGGER ledger_accounts_identity BEFORE UPDATE ON ledger_accounts
    WHEN OLD.id <> NEW.id OR OLD.code <> NEW.code OR OLD.type <> NEW.type
         OR OLD.currency <> NEW.currency OR OLD.customer_id IS NOT NEW.customer_id
    BEGIN SELECT RAISE(ABORT, 'ledger: account code, type, currency and owner never change'); END
    """,
]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "ledger_accounts",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("customer_id", sa.String(200), nullable=True),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_accounts"),
        sa.UniqueConstraint("code", name="uq_ledger_accounts_code"),
        sa.UniqueConstraint("id", "currency", name="uq_ledger_accounts_id_currency"),
        sa.CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')",
            name=op.f("ck_ledger_accounts_type"),
        ),
        sa.CheckConstraint("length(currency) = 3", name=op.f("ck_ledger_accounts_currency")),
    )
    op.create_index("ix_ledger_accounts_customer_id", "ledger_accounts", ["customer_id"])

    entry_constraints: list[sa.schema.SchemaItem] = []
    if sqlite:
        entry_constraints.append(
            sa.ForeignKeyConstraint(
                ["id"],
                ["ledger_entry_seals.entry_id"],
                name="fk_ledger_entries_id_ledger_entry_seals",
                deferrable=True,
                initially="DEFERRED",
            )
        )
    op.create_table(
        "ledger_entries",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("reverses_entry_id", ID, nullable=True),
        sa.Column("posting_count", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_entries"),
        sa.UniqueConstraint("idempotency_key", name="uq_ledger_entries_idempotency_key"),
        sa.UniqueConstraint("reverses_entry_id", name="uq_ledger_entries_reverses_entry_id"),
        sa.ForeignKeyConstraint(
            ["reverses_entry_id"],
            ["ledger_entries.id"],
            name="fk_ledger_entries_reverses_entry_id_ledger_entries",
        ),
        sa.CheckConstraint("posting_count > 0", name=op.f("ck_ledger_entries_posting_count")),
        sa.CheckConstraint(
            f"length(CAST(metadata AS TEXT)) <= {METADATA_DB_LIMIT}",
            name=op.f("ck_ledger_entries_metadata_size"),
        ),
        *entry_constraints,
    )
    op.create_index("ix_ledger_entries_effective_at", "ledger_entries", ["effective_at"])

    if sqlite:
        op.create_table(
            "ledger_entry_seals",
            sa.Column("entry_id", ID, nullable=False),
            sa.PrimaryKeyConstraint("entry_id", name="pk_ledger_entry_seals"),
            sa.ForeignKeyConstraint(
                ["entry_id"],
                ["ledger_entries.id"],
                name="fk_ledger_entry_seals_entry_id_ledger_entries",
            ),
        )

    op.create_table(
        "ledger_postings",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("entry_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ledger_postings"),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["ledger_entries.id"], name="fk_ledger_postings_entry_id_ledger_entries"
        ),
        sa.ForeignKeyConstraint(
            ["account_id", "currency"],
            ["ledger_accounts.id", "ledger_accounts.currency"],
            name="fk_ledger_postings_account_id_currency_ledger_accounts",
        ),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_ledger_postings_amount_nonzero")),
    )
    op.create_index("ix_ledger_postings_entry_id", "ledger_postings", ["entry_id"])
    op.create_index(
        "ix_ledger_postings_account_entry", "ledger_postings", ["account_id", "entry_id"]
    )

    for statement in SQLITE_TRIGGERS if sqlite else [*PG_FUNCTIONS, *PG_TRIGGERS]:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    # Dropping a table drops its triggers; PostgreSQL's trigger functions go last.
    op.drop_table("ledger_postings")
    if sqlite:
        op.drop_table("ledger_entry_seals")
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
    if not sqlite:
        for function in ("ledger_refuse_change", "ledger_check_entry", "ledger_guard_posting"):
            op.execute(f"DROP FUNCTION {function}()")
