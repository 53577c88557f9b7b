"""Dunwell's double-entry ledger on SQLAlchemy 2 (PostgreSQL or SQLite).

Entry points: ``ledger.db.make_engine``, ``ledger.migrate.upgrade``,
``ledger.posting.Ledger`` (one transaction per call), ``ledger.chart`` (the billing
chart of accounts) and ``ledger.journal.post_entries`` for posting inside a
transaction the caller owns.
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
