"""Read-side questions: balance at a time, account statement, trial balance."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, func, select

from billing.money import Money
from ledger.accounts import find_account
from ledger.entries import AccountRef, require_aware_utc
from ledger.models import AccountType, accounts_table, entries_table, postings_table

_a, _e, _p = accounts_table, entries_table, postings_table


def balance(conn: Connection, account: AccountRef, at: datetime | None = None) -> Money:
    """The account's balance; with ``at``, from postings effective at or before ``at``."""
    row = find_account(conn, account)
    if at is None:
        return Money(row.balance, row.currency)
    return Money(_sum_until(conn, row.id, require_aware_utc(at, "at")), row.currency)


def postings_sum(conn: Connection, account: AccountRef) -> int:
    """Sum of every posting of the account, whatever its date; equals the stored balance."""
    row = find_account(conn, account)
    total = conn.execute(
        select(func.coalesce(func.sum(_p.c.amount), 0)).where(_p.c.account_id == row.id)
    ).scalar_one()
    return int(total)


def _sum_until(conn: Connection, account_id: int, at: datetime) -> int:
    total = conn.execute(
        select(func.coalesce(func.sum(_p.c.amount), 0))
        .join(_e, _e.c.id == _p.c.entry_id)
        .where(_p.c.account_id == account_id, _e.c.effective_at <= at)
    ).scalar_one()
    return int(total)


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry_id: int
    effective_at: datetime
    description: str
    amount: int
    running_balance: int


@dataclass(frozen=True, slots=True)
class Statement:
    """Postings effective in (start, end], between the balances at start and at end."""

    account_id: int
    account_code: str
    currency: str
    start: datetime | None
    end: datetime | None
    opening_balance: int
    lines: tuple[StatementLine, ...]
    closing_balance: int


def statement(
    conn: Connection,
    account: AccountRef,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Statement:
    row = find_account(conn, account)
    start = None if start is None else require_aware_utc(start, "start")
    end = None if end is None else require_aware_utc(end, "end")
    opening = 0 if start is None else _sum_until(conn, row.id, start)
    query = (
        select(_p.c.entry_id, _e.c.effective_at, _e.c.description, _p.c.amount)
        .join(_e, _e.c.id == _p.c.entry_id)
        .where(_p.c.account_id == row.id)
        .order_by(_e.c.effective_at, _p.c.entry_id, _p.c.id)
    )
    if start is not None:
        query = query.where(_e.c.effective_at > start)
    if end is not None:
        query = query.where(_e.c.effective_at <= end)
    running = opening
    lines: list[StatementLine] = []
    for entry_id, effective_at, description, amount in conn.execute(query):
        running += int(amount)
        lines.append(StatementLine(int(entry_id), effective_at, description, int(amount), running))
    return Statement(
        account_id=row.id,
        account_code=row.code,
        currency=row.currency,
        start=start,
        end=end,
        opening_balance=opening,
        lines=tuple(lines),
        closing_balance=running,
    )


@dataclass(frozen=True, slots=True)
class AccountBalance:
    account_id: int
    code: str
    type: AccountType
    currency: str
    balance: int


@dataclass(frozen=True, slots=True)
class CurrencyTotals:
    """Debit balances, credit balances (as a positive number) and their difference."""

    currency: str
    debits: int
    credits: int

    @property
    def net(self) -> int:
        return self.debits - self.credits


@dataclass(frozen=True, slots=True)
class TrialBalance:
    at: datetime | None
    accounts: tuple[AccountBalance, ...]
    currencies: tuple[CurrencyTotals, ...]

    @property
    def balanced(self) -> bool:
        return all(totals.net == 0 for totals in self.currencies)


def trial_balance(conn: Connection, at: datetime | None = None) -> TrialBalance:
    """Per-account balances summed from postings (the journal, not the stored balance
    column), grouped into debit and credit totals per currency."""
    sums = (
        select(_p.c.account_id, func.sum(_p.c.amount).label("total"))
        .join(_e, _e.c.id == _p.c.entry_id)
        .group_by(_p.c.account_id)
    )
    if at is not None:
        at = require_aware_utc(at, "at")
        sums = sums.where(_e.c.effective_at <= at)
    per_account = sums.subquery()
    query = (
        select(_a.c.id, _a.c.code, _a.c.type, _a.c.currency, per_account.c.total)
        .join(per_account, per_account.c.account_id == _a.c.id)
        .order_by(_a.c.currency, _a.c.code)
    )
    accounts: list[AccountBalance] = []
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    for id_, code, type_, currency, total in conn.execute(query):
        amount = int(total)
        accounts.append(AccountBalance(int(id_), code, AccountType(type_), currency, amount))
        if amount >= 0:
            debits[currency] += amount
        else:
            credits[currency] += -amount
    currencies = tuple(
        CurrencyTotals(currency, debits[currency], credits[currency])
        for currency in sorted(debits.keys() | credits.keys())
    )
    return TrialBalance(at=at, accounts=tuple(accounts), currencies=currencies)


__all__ = [
    "AccountBalance",
    "CurrencyTotals",
    "Statement",
    "StatementLine",
    "TrialBalance",
    "balance",
    "postings_sum",
    "statement",
    "trial_balance",
]
