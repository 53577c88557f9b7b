"""The ledger service: one transaction per call, retried when it loses a race.

Every method opens its own transaction and commits only when the work completed;
any error rolls everything back. Serialization failures and deadlocks (PostgreSQL)
or a locked database (SQLite) are retried a bounded number of times with jittered
backoff, so callers never see them unless contention outlasts the retries.

To write ledger entries together with other rows in one transaction, call
``ledger.journal.post_entries(conn, ...)`` on your own connection instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from billing.money import Money
from ledger import accounts, journal, queries, unit_of_work
from ledger.accounts import AccountRow, AccountSpec
from ledger.entries import AccountRef, EntryRequest, PostedEntry, PostingRequest
from ledger.errors import AlreadyReversedError
from ledger.unit_of_work import MAX_ATTEMPTS

T = TypeVar("T")

_STALE_ACCOUNT = "fk_ledger_postings_account_id_currency_ledger_accounts"


class Ledger:
    def __init__(self, engine: Engine, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self._accounts: dict[AccountRef, AccountRow] = {}

    def post(self, entry: EntryRequest) -> PostedEntry:
        return self.post_batch([entry])[0]

    def post_batch(self, entries: Sequence[EntryRequest]) -> list[PostedEntry]:
        """All entries in one transaction: all are posted, or none."""
        return self._transact(
            lambda conn: journal.post_entries(conn, entries, account_cache=self._accounts)
        )

    def reverse(
        self, entry_id: int, *, idempotency_key: str, effective_at: datetime, description: str
    ) -> PostedEntry:
        """A new entry with every posting of ``entry_id`` negated; at most once per entry."""

        def work(conn: Connection) -> PostedEntry:
            original = journal.load_entry(conn, entry_id)
            request = EntryRequest(
                idempotency_key=idempotency_key,
                effective_at=effective_at,
                description=description,
                postings=[
                    PostingRequest(p.account_id, -p.amount, p.currency) for p in original.postings
                ],
                metadata={"reverses_idempotency_key": original.idempotency_key},
                reverses_entry_id=entry_id,
            )
            return journal.post_entries(conn, [request])[0]

        return self._transact(work)

    def entry(self, entry_id: int) -> PostedEntry:
        return self._read(lambda conn: journal.load_entry(conn, entry_id))

    def account(self, account: AccountRef) -> AccountRow:
        return self._read(lambda conn: accounts.find_account(conn, account))

    def get_or_create_accounts(self, specs: Sequence[AccountSpec]) -> list[AccountRow]:
        return self._transact(lambda conn: accounts.get_or_create_accounts(conn, specs))

    def get_or_create_account(self, spec: AccountSpec) -> AccountRow:
        return self.get_or_create_accounts([spec])[0]

    def balance(self, account: AccountRef, at: datetime | None = None) -> Money:
        return self._read(lambda conn: queries.balance(conn, account, at))

    def statement(
        self,
        account: AccountRef,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> queries.Statement:
        return self._read(lambda conn: queries.statement(conn, account, start=start, end=end))

    def trial_balance(self, at: datetime | None = None) -> queries.TrialBalance:
        return self._read(lambda conn: queries.trial_balance(conn, at))

    def _read(self, work: Callable[[Connection], T]) -> T:
        return unit_of_work.read(self.engine, work)

    def _transact(self, work: Callable[[Connection], T]) -> T:
        try:
            return unit_of_work.transact(self.engine, work, max_attempts=self.max_attempts)
        except IntegrityError as exc:
            if _STALE_ACCOUNT not in str(exc.orig) or not self._accounts:
                raise _integrity_error(exc) from exc
            # A cached account was deleted (possible only while it had no postings).
            self._accounts.clear()
        try:
            return unit_of_work.transact(self.engine, work, max_attempts=self.max_attempts)
        except IntegrityError as exc:
            raise _integrity_error(exc) from exc


def _integrity_error(exc: IntegrityError) -> Exception:
    if "reverses_entry_id" in str(exc.orig):
        return AlreadyReversedError("a concurrent transaction reversed the same entry")
    return exc
