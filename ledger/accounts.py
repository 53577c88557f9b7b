"""Account rows: lookup with row locks, and get-or-create from a specification."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, or_, select

from ledger.db import insert_or_ignore
from ledger.entries import AccountRef, require_currency
from ledger.errors import AccountConflictError, InvalidEntryError, UnknownAccountError
from ledger.models import AccountType, accounts_table

_a = accounts_table


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What an account is; its code is its identity."""

    code: str
    type: AccountType
    currency: str
    customer_id: str | None = None  # None: the system owns it

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not 0 < len(self.code) <= 200:
            raise InvalidEntryError(f"account code must be 1..200 characters, got {self.code!r}")
        object.__setattr__(self, "type", AccountType(self.type))
        require_currency(self.currency)


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    code: str
    type: AccountType
    currency: str
    customer_id: str | None
    balance: int


_COLUMNS = (_a.c.id, _a.c.code, _a.c.type, _a.c.currency, _a.c.customer_id, _a.c.balance)


def _row(values: tuple[object, ...]) -> AccountRow:
    id_, code, type_, currency, customer_id, balance = values
    return AccountRow(
        id=int(id_),  # type: ignore[call-overload]
        code=str(code),
        type=AccountType(str(type_)),
        currency=str(currency),
        customer_id=None if customer_id is None else str(customer_id),
        balance=int(balance),  # type: ignore[call-overload]
    )


def find_accounts(
    conn: Connection, refs: Iterable[AccountRef], *, lock: bool = False
) -> dict[AccountRef, AccountRow]:
    """Accounts by code or id; missing ones raise. With ``lock`` on PostgreSQL the rows
    are locked FOR UPDATE in ascending id order, the one order every writer uses, so
    concurrent postings queue instead of deadlocking."""
    refs = set(refs)
    codes = sorted(ref for ref in refs if isinstance(ref, str))
    ids = sorted(ref for ref in refs if isinstance(ref, int))
    stmt = select(*_COLUMNS).where(or_(_a.c.code.in_(codes), _a.c.id.in_(ids))).order_by(_a.c.id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    found: dict[AccountRef, AccountRow] = {}
    for values in conn.execute(stmt):
        row = _row(tuple(values))
        found[row.code] = row
        found[row.id] = row
    missing = [ref for ref in refs if ref not in found]
    if missing:
        raise UnknownAccountError(f"unknown accounts: {sorted(map(str, missing))}")
    return found


def find_account(conn: Connection, ref: AccountRef) -> AccountRow:
    return find_accounts(conn, [ref])[ref]


def get_or_create_accounts(conn: Connection, specs: Iterable[AccountSpec]) -> list[AccountRow]:
    """Rows for the specs, creating those that do not exist; safe under concurrency
    (INSERT ... ON CONFLICT DO NOTHING, then read)."""
    specs = list(specs)
    by_code: Mapping[str, AccountSpec] = {spec.code: spec for spec in specs}
    if not by_code:
        return []
    insert = insert_or_ignore(conn, _a).values(
        [
            {
                "code": spec.code,
                "type": spec.type.value,
                "currency": spec.currency,
                "customer_id": spec.customer_id,
            }
            for spec in sorted(by_code.values(), key=lambda s: s.code)
        ]
    )
    conn.execute(insert.on_conflict_do_nothing(index_elements=["code"]))
    rows = find_accounts(conn, by_code)
    for code, spec in by_code.items():
        row = rows[code]
        if (row.type, row.currency, row.customer_id) != (
            spec.type,
            spec.currency,
            spec.customer_id,
        ):
            raise AccountConflictError(
                f"account {code!r} exists as {row.type.value} {row.currency} "
                f"owned by {row.customer_id or 'the system'}; asked for {spec}"
            )
    return [rows[spec.code] for spec in specs]
