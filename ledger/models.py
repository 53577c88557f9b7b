"""The journal's tables (accounts, entries, postings) as SQLAlchemy 2 typed models.

The schema itself is made only by the Alembic revisions in ``ledger/migrations``; these
models describe it for queries and for ``alembic revision --autogenerate``. Accounts
carry a mutable running ``balance``; entries and postings are append-only, and the
database refuses to update or delete them.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema import Base, Id, Json, UTCDateTime


class AccountType(enum.StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    EQUITY = "equity"
    REVENUE = "revenue"
    EXPENSE = "expense"


class Account(Base):
    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # Target of the postings' composite foreign key: a posting's currency is its
        # account's currency, checked by the database.
        UniqueConstraint("id", "currency"),
        CheckConstraint(
            "type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name="type"
        ),
        CheckConstraint("length(currency) = 3", name="currency"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    # NULL means the account belongs to the system (revenue, tax, gateway, cash).
    customer_id: Mapped[str | None] = mapped_column(String(200), index=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class JournalEntry(Base):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("posting_count > 0", name="posting_count"),
        CheckConstraint("length(CAST(metadata AS TEXT)) <= 16384", name="metadata_size"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    effective_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    description: Mapped[str] = mapped_column(String(500))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", Json)
    # UNIQUE: an entry is reversed at most once.
    reverses_entry_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("ledger_entries.id"), unique=True
    )
    # How many postings the entry has; the database checks it at commit, so postings
    # can be neither missing nor added to an entry later.
    posting_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class Posting(Base):
    __tablename__ = "ledger_postings"
    __table_args__ = (
        ForeignKeyConstraint(
            ["account_id", "currency"], ["ledger_accounts.id", "ledger_accounts.currency"]
        ),
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_ledger_postings_account_entry", "account_id", "entry_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(Id, ForeignKey("ledger_entries.id"), index=True)
    account_id: Mapped[int] = mapped_column(Id)
    currency: Mapped[str] = mapped_column(String(3))
    # Signed minor units: positive debits, negative credits.
    amount: Mapped[int] = mapped_column(BigInteger)


accounts_table = cast(Table, Account.__table__)
entries_table = cast(Table, JournalEntry.__table__)
postings_table = cast(Table, Posting.__table__)

# Tables the SQLite revision adds beside the models (see 0001_ledger); autogenerate
# must not propose dropping them.
SQLITE_ONLY_TABLES = frozenset({"ledger_entry_seals"})
