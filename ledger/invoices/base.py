"""What every concern of the invoice store shares (``StoreBase``).

The engine and the issuer; one retried transaction per call (``_transact``) or one
read (``_read``); posting a document's ledger entry (``_post``) through a cache of
accounts that only committed transactions fill; moving an invoice's status
(``_set_status``); taking the next number of a series (``_next_number``); writing the
outbound event of a change in its transaction (``_emit``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, update

from ledger import unit_of_work
from ledger.accounts import AccountRow, AccountSpec, get_or_create_accounts
from ledger.entries import AccountRef, EntryRequest, PostingRequest
from ledger.invoices.numbering import next_number
from ledger.invoices.tables import (
    invoices as _inv,
)
from ledger.invoices.types import InvoiceStatus
from ledger.journal import post_entries
from ledger.outbound import OutboxEvent, outbox
from ledger.unit_of_work import MAX_ATTEMPTS
from tax.rates import load_rate_table

T = TypeVar("T")

# Sets the columns its parameters name on invoice ``b_invoice``; one statement object for
# every invoice update, so its compiled forms are cached instead of rebuilt per call.
UPDATE_INVOICE = update(_inv).where(_inv.c.id == bindparam("b_invoice"))

_NEW_ACCOUNTS = "dunwell_invoices_new_accounts"
_ACCOUNT_CACHE_LIMIT = 100_000


class StoreBase:
    def __init__(
        self,
        engine: Engine,
        *,
        issuer: str = "dunwell",
        number_prefix: str = "DW",
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if not issuer or len(issuer) > 100:
            raise ValueError("issuer must be 1..100 characters")
        self.engine = engine
        self.issuer = issuer
        self.number_prefix = number_prefix
        self.max_attempts = max_attempts
        self._accounts: MutableMapping[AccountRef, AccountRow] = {}
        self._recorded_rate_tables: set[str] = set()
        self._packaged_version = load_rate_table().version

    def _next_number(self, conn: Connection, series: str, at: datetime) -> str:
        # Every series is numbered through this method: a subclass that wraps it sees
        # each number taken (tests/invoices/test_numbering.py fails a transaction here).
        return next_number(
            conn, issuer=self.issuer, prefix=self.number_prefix, series=series, at=at
        )

    def _post(
        self,
        conn: Connection,
        *,
        key: str,
        at: datetime,
        description: str,
        currency: str,
        moves: Sequence[tuple[AccountSpec, int]],
        metadata: Mapping[str, Any],
    ) -> int | None:
        """Post the non-zero moves (merged per account) as one entry; None if all are zero."""
        merged: dict[str, int] = defaultdict(int)
        specs = {}
        for spec, amount in moves:
            merged[spec.code] += amount
            specs[spec.code] = spec
        postings = [
            PostingRequest(code, amount, currency) for code, amount in merged.items() if amount
        ]
        if not postings:
            return None
        cache: MutableMapping[AccountRef, AccountRow] = self._accounts
        if any(code not in cache for code in merged):
            # Accounts created here exist for others only once this transaction commits:
            # they join the shared cache then (see _transact), never before.
            cache = {}
            for account in get_or_create_accounts(conn, [specs[c] for c in merged]):
                cache[account.code] = account
                cache[account.id] = account
            conn.info.setdefault(_NEW_ACCOUNTS, {}).update(cache)
        request = EntryRequest(
            idempotency_key=key,
            effective_at=at,
            description=description[:500],
            postings=postings,
            metadata=dict(metadata),
        )
        return post_entries(conn, [request], account_cache=cache)[0].id

    @staticmethod
    def _set_status(conn: Connection, invoice_id: str, status: InvoiceStatus, at: datetime) -> None:
        conn.execute(
            UPDATE_INVOICE,
            {"b_invoice": invoice_id, "status": status.value, "status_changed_at": at},
        )

    @staticmethod
    def _emit(
        conn: Connection,
        event_type: str,
        key: str,
        row: Any,
        at: datetime,
        data: Mapping[str, Any],
    ) -> None:
        """Write the outbound event of a change to invoice ``row`` in this transaction;
        ``key`` names the change, so a retried transaction writes the event once."""
        event = OutboxEvent(
            key=key,
            type=event_type,
            occurred_at=at,
            data=data,
            subscription_id=row.subscription_id,
            customer_id=row.customer_id,
        )
        outbox.record(conn, [event], at=at)

    def _read(self, work: Callable[[Connection], T]) -> T:
        return unit_of_work.read(self.engine, work)

    def _transact(self, work: Callable[[Connection], T]) -> T:
        def tracked(conn: Connection) -> tuple[T, Any]:
            conn.info.pop(_NEW_ACCOUNTS, None)
            result = work(conn)
            return result, conn.info.pop(_NEW_ACCOUNTS, None)

        result, created = unit_of_work.transact(
            self.engine, tracked, max_attempts=self.max_attempts
        )
        # Only accounts from a committed transaction may enter the cache.
        if created and len(self._accounts) < _ACCOUNT_CACHE_LIMIT:
            self._accounts.update(created)
        return result
