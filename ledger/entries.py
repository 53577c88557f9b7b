"""Journal entry requests and results: pure values, validated on construction.

Sign convention: a positive amount is a debit, a negative amount a credit. Amounts are
``int`` minor units of an ISO 4217 currency; ``float`` and ``bool`` are refused.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from billing.money import currency_exponent, is_supported_currency
from ledger.errors import (
    EmptyEntryError,
    InvalidAmountError,
    InvalidEntryError,
    InvalidMetadataError,
    MetadataTooLargeError,
    NaiveDatetimeError,
    UnbalancedEntryError,
    UnsupportedCurrencyError,
)

MAX_METADATA_BYTES = 4096
MAX_DESCRIPTION_CHARS = 500
MAX_IDEMPOTENCY_KEY_CHARS = 200
MAX_CODE_CHARS = 200
# 10**15 minor units is a trillion KWD or a quadrillion JPY; the bound keeps any sum of
# a few thousand postings far inside BIGINT.
MAX_ABS_AMOUNT = 10**15

AccountRef = str | int
"""An account's code (``str``) or database id (``int``)."""


def require_aware_utc(value: datetime, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise NaiveDatetimeError(f"{what} must be a datetime, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(f"{what} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)


def require_currency(currency: object) -> str:
    if not isinstance(currency, str) or not is_supported_currency(currency):
        raise UnsupportedCurrencyError(f"unsupported currency {currency!r}")
    currency_exponent(currency)
    return currency


def require_amount(amount: object, *, allow_negative: bool = True) -> int:
    if type(amount) is not int:  # bool is an int subclass and is refused here too
        raise InvalidAmountError(f"amount must be an int of minor units, got {amount!r}")
    if amount == 0:
        raise InvalidAmountError("amount must not be zero")
    if amount < 0 and not allow_negative:
        raise InvalidAmountError(f"amount must be positive, got {amount}")
    if abs(amount) > MAX_ABS_AMOUNT:
        raise InvalidAmountError(f"amount {amount} exceeds {MAX_ABS_AMOUNT} minor units")
    return amount


def require_account_ref(account: object) -> AccountRef:
    if isinstance(account, bool):
        raise InvalidEntryError(f"account must be a code or an id, got {account!r}")
    if isinstance(account, int) and account > 0:
        return account
    if isinstance(account, str) and 0 < len(account) <= MAX_CODE_CHARS:
        return account
    raise InvalidEntryError(f"account must be a code or a positive id, got {account!r}")


def canonical_metadata(metadata: object) -> str:
    if not isinstance(metadata, Mapping):
        raise InvalidMetadataError(f"metadata must be a mapping, got {type(metadata).__name__}")
    try:
        text = json.dumps(
            metadata, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise InvalidMetadataError(f"metadata is not JSON-serializable: {exc}") from None
    if any(not isinstance(key, str) for key in metadata):
        raise InvalidMetadataError("metadata keys must be strings")
    size = len(text.encode())
    if size > MAX_METADATA_BYTES:
        raise MetadataTooLargeError(f"metadata is {size} bytes; the limit is {MAX_METADATA_BYTES}")
    return text


@dataclass(frozen=True, slots=True)
class PostingRequest:
    account: AccountRef
    amount: int
    currency: str

    def __post_init__(self) -> None:
        require_account_ref(self.account)
        require_amount(self.amount)
        require_currency(self.currency)


@dataclass(frozen=True, slots=True)
class EntryRequest:
    """One balanced journal entry, identified by its idempotency key."""

    idempotency_key: str
    effective_at: datetime
    description: str
    postings: Sequence[PostingRequest]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    reverses_entry_id: int | None = None
    metadata_json: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = self.idempotency_key
        if not isinstance(key, str) or not 0 < len(key) <= MAX_IDEMPOTENCY_KEY_CHARS:
            raise InvalidEntryError(
                f"idempotency_key must be 1..{MAX_IDEMPOTENCY_KEY_CHARS} characters"
            )
        if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION_CHARS:
            raise InvalidEntryError(f"description must be at most {MAX_DESCRIPTION_CHARS} chars")
        rev = self.reverses_entry_id
        if rev is not None and (type(rev) is not int or rev <= 0):
            raise InvalidEntryError(f"reverses_entry_id must be a positive int, got {rev!r}")
        object.__setattr__(
            self, "effective_at", require_aware_utc(self.effective_at, "effective_at")
        )
        postings = tuple(self.postings)
        if not postings:
            raise EmptyEntryError(f"entry {key!r} has no postings")
        for posting in postings:
            if not isinstance(posting, PostingRequest):
                raise InvalidEntryError(f"postings must be PostingRequest, got {posting!r}")
        object.__setattr__(self, "postings", postings)
        object.__setattr__(self, "metadata_json", canonical_metadata(self.metadata))
        object.__setattr__(self, "metadata", json.loads(self.metadata_json))
        unbalanced = unbalanced_currencies(postings)
        if unbalanced:
            raise UnbalancedEntryError(f"entry {key!r} does not balance: {unbalanced}")

    @classmethod
    def transfer(
        cls,
        *,
        idempotency_key: str,
        effective_at: datetime,
        description: str,
        debit: AccountRef,
        credit: AccountRef,
        amount: int,
        currency: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> EntryRequest:
        """Two postings moving a positive ``amount`` from ``credit`` to ``debit``."""
        require_amount(amount, allow_negative=False)
        return cls(
            idempotency_key=idempotency_key,
            effective_at=effective_at,
            description=description,
            postings=(
                PostingRequest(debit, amount, currency),
                PostingRequest(credit, -amount, currency),
            ),
            metadata=metadata or {},
        )


def unbalanced_currencies(postings: Iterable[PostingRequest]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        sums[posting.currency] += posting.amount
    return {currency: total for currency, total in sorted(sums.items()) if total != 0}


def content_hash(
    request: EntryRequest, account_codes: Sequence[str], reverses_entry_id: int | None
) -> str:
    """Fingerprint of what an entry says, independent of posting order and of whether
    accounts were named by code or id; a replayed key must carry the same fingerprint."""
    lines = sorted(
        [code, posting.currency, posting.amount]
        for code, posting in zip(account_codes, request.postings, strict=True)
    )
    document = {
        "effective_at": request.effective_at.isoformat(),
        "description": request.description,
        "metadata": request.metadata_json,
        "postings": lines,
        "reverses_entry_id": reverses_entry_id,
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PostedPosting:
    account_id: int
    account_code: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class PostedEntry:
    id: int
    idempotency_key: str
    effective_at: datetime
    description: str
    metadata: Mapping[str, Any]
    reverses_entry_id: int | None
    postings: tuple[PostedPosting, ...]
    # True when the key had already been posted and the original entry is returned.
    replayed: bool = False
