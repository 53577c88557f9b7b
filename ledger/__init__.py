"""Dunwell's double-entry ledger and billing records on SQLAlchemy 2 (PostgreSQL or SQLite).

The journal (``models``, ``accounts``, ``journal``, ``posting``, ``queries``,
``chart``), invoices and credit and debit notes (``invoices``), the compliance records
(``compliance``, ``compliance_tables``; ops' certificates, registrations and nexus
changes in ``tax_records``; ops' own notes with their actor in ``ops_notes``), the tax
liability report (``tax_report``), the OSS return (``oss_return``), rate changes
carried into the next cycle (``rate_change_notes``), the economic-nexus watch
(``nexus_watch``) and
the reconciliation records (``reconciliation``: settlement postings, the exceptions
queue, settlement lines and payout runs);
and the database plumbing every store shares: the schema base (``schema``), engines
and dialect helpers (``db``), transactions with retries (``unit_of_work``) and the
Alembic migrations (``migrate``, ``migrations/``, which see every table, the stores'
too).

Entry points: ``ledger.db.make_engine``, ``ledger.migrate.upgrade``,
``ledger.posting.Ledger`` (one transaction per call), ``ledger.chart`` (the billing
chart of accounts), ``ledger.journal.post_entries`` for posting inside a transaction
the caller owns, and ``ledger.invoices.InvoiceStore``.

May import: ``billing`` and ``tax`` (pure), SQLAlchemy and Alembic. Never
``activities``, ``workflows``, ``api`` or ``dunwell``, and never ``stores`` (only the
migration environment imports ``stores.tables``, to see every table).
"""

from ledger.entries import EntryRequest, PostedEntry, PostedPosting, PostingRequest
from ledger.errors import (
    AccountConflictError,
    AlreadyReversedError,
    CurrencyMismatchError,
    EmptyEntryError,
    IdempotencyConflictError,
    InvalidAmountError,
    InvalidEntryError,
    InvalidMetadataError,
    LedgerBusyError,
    LedgerError,
    MetadataTooLargeError,
    NaiveDatetimeError,
    UnbalancedEntryError,
    UnknownAccountError,
    UnknownEntryError,
    UnsupportedCurrencyError,
)

__all__ = [
    "AccountConflictError",
    "AlreadyReversedError",
    "CurrencyMismatchError",
    "EmptyEntryError",
    "EntryRequest",
    "IdempotencyConflictError",
    "InvalidAmountError",
    "InvalidEntryError",
    "InvalidMetadataError",
    "LedgerBusyError",
    "LedgerError",
    "MetadataTooLargeError",
    "NaiveDatetimeError",
    "PostedEntry",
    "PostedPosting",
    "PostingRequest",
    "UnbalancedEntryError",
    "UnknownAccountError",
    "UnknownEntryError",
    "UnsupportedCurrencyError",
]
