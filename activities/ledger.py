"""Ledger activities: the workflows' only way to write journal entries.

Every entry carries an idempotency key derived from the calling workflow's identity
(e.g. ``invoice:<id>:issued``), so a retried activity returns the original entry
instead of writing a second one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.accounts import AccountSpec
from ledger.entries import EntryRequest, PostingRequest
from ledger.errors import LedgerBusyError, LedgerError
from ledger.models import AccountType
from ledger.posting import Ledger


@dataclass(frozen=True)
class AccountLine:
    """One posting against a chart account, created on first use."""

    code: str
    type: AccountType
    currency: str
    amount: int
    customer_id: str | None = None


@dataclass(frozen=True)
class JournalEntryInput:
    idempotency_key: str
    effective_at: datetime
    description: str
    lines: list[AccountLine]
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PostedEntryRef:
    entry_id: int
    idempotency_key: str
    replayed: bool


def _spec(line: AccountLine) -> AccountSpec:
    return AccountSpec(line.code, line.type, line.currency, line.customer_id)


def _request(entry: JournalEntryInput) -> EntryRequest:
    return EntryRequest(
        idempotency_key=entry.idempotency_key,
        effective_at=entry.effective_at,
        description=entry.description,
        postings=[PostingRequest(line.code, line.amount, line.currency) for line in entry.lines],
        metadata=entry.metadata,
    )


def ledger_failure(err: LedgerError) -> ApplicationError:
    """Contention is retried by Temporal; every other ledger error is final."""
    return ApplicationError(
        str(err), type=type(err).__name__, non_retryable=not isinstance(err, LedgerBusyError)
    )


class LedgerActivities:
    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @activity.defn(name="ledger.post_entries")
    async def post_entries(self, entries: list[JournalEntryInput]) -> list[PostedEntryRef]:
        """Post entries all-or-nothing, creating the chart accounts they name."""
        try:
            return await asyncio.to_thread(self._post, entries)
        except LedgerError as err:
            raise ledger_failure(err) from err

    def _post(self, entries: list[JournalEntryInput]) -> list[PostedEntryRef]:
        specs: Mapping[str, AccountSpec] = {
            line.code: _spec(line) for entry in entries for line in entry.lines
        }
        self._ledger.get_or_create_accounts(list(specs.values()))
        posted = self._ledger.post_batch([_request(entry) for entry in entries])
        return [PostedEntryRef(p.id, p.idempotency_key, p.replayed) for p in posted]
