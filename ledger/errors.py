"""Errors raised by the ledger.

LedgerError
├── InvalidEntryError            the request is malformed; nothing was sent to the database
│   ├── EmptyEntryError          an entry without postings
│   ├── UnbalancedEntryError     postings do not sum to zero in some currency
│   ├── InvalidAmountError       not an int of minor units (float, bool, str), zero, or out of range
│   ├── UnsupportedCurrencyError not an ISO 4217 code Dunwell supports
│   ├── NaiveDatetimeError       a datetime without a timezone
│   ├── InvalidMetadataError     metadata that is not a JSON object
│   │   └── MetadataTooLargeError
│   └── ...
├── UnknownAccountError          no account with that code or id
├── UnknownEntryError            no journal entry with that id
├── CurrencyMismatchError        a posting's currency differs from its account's
├── AccountConflictError         get-or-create found the code with another type or currency
├── IdempotencyConflictError     the key was used before with different content
├── AlreadyReversedError         the entry already has a reversing entry
└── LedgerBusyError              contention outlasted the bounded retries
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base class of every ledger error."""


class InvalidEntryError(LedgerError):
    """The entry request is malformed."""


class EmptyEntryError(InvalidEntryError):
    """A journal entry needs at least one posting."""


class UnbalancedEntryError(InvalidEntryError):
    """The postings of an entry do not sum to zero in every currency."""


class InvalidAmountError(InvalidEntryError):
    """An amount is not a non-zero int of minor units within range."""


class UnsupportedCurrencyError(InvalidEntryError):
    """The currency is not an ISO 4217 code Dunwell supports."""


class NaiveDatetimeError(InvalidEntryError):
    """A datetime carries no timezone; the ledger only takes aware datetimes."""


class InvalidMetadataError(InvalidEntryError):
    """Metadata must be a JSON object with string keys."""


class MetadataTooLargeError(InvalidMetadataError):
    """Serialized metadata exceeds the size limit."""


class UnknownAccountError(LedgerError):
    """No account has that code or id."""


class UnknownEntryError(LedgerError):
    """No journal entry has that id."""


class CurrencyMismatchError(LedgerError):
    """A posting's currency differs from its account's currency."""


class AccountConflictError(LedgerError):
    """An account code already exists with a different type, currency or owner."""


class IdempotencyConflictError(LedgerError):
    """The idempotency key was already used for an entry with different content."""


class AlreadyReversedError(LedgerError):
    """The entry has already been reversed; an entry is reversed at most once."""


class LedgerBusyError(LedgerError):
    """Serialization failures or deadlocks persisted past the bounded retries."""
