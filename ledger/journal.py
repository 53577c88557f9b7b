"""Writing journal entries inside a caller's transaction (never commits).

``post_entries`` is the one write path: it locks the accounts involved in id order,
inserts entries with ON CONFLICT DO NOTHING on the idempotency key, inserts postings,
seals entries on SQLite, and moves account balances, all on the caller's connection.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from ledger.accounts import AccountRow, find_accounts
from ledger.db import insert_or_ignore
from ledger.entries import (
    AccountRef,
    EntryRequest,
    PostedEntry,
    PostedPosting,
    content_hash,
)
from ledger.errors import (
    AlreadyReversedError,
    CurrencyMismatchError,
    IdempotencyConflictError,
    UnknownAccountError,
    UnknownEntryError,
)
from ledger.models import accounts_table, entries_table, postings_table

_a, _e, _p = accounts_table, entries_table, postings_table

_ACCOUNT_CACHE_LIMIT = 100_000
_SEAL = "INSERT INTO ledger_entry_seals (entry_id) VALUES (?)"
_MOVE_BALANCE = (
    update(_a)
    .where(_a.c.id == bindparam("b_account_id"))
    .values(balance=_a.c.balance + bindparam("b_delta"))
)


@dataclass(frozen=True, slots=True)
class _Prepared:
    request: EntryRequest
    accounts: tuple[AccountRow, ...]
    content_hash: str


def post_entries(
    conn: Connection,
    requests: Sequence[EntryRequest],
    *,
    account_cache: MutableMapping[AccountRef, AccountRow] | None = None,
) -> list[PostedEntry]:
    """Post the entries on ``conn`` in the caller's transaction; results keep the
    requests' order. A key seen before returns its original entry (``replayed``).

    ``account_cache`` may carry accounts across calls: an account's id, code and
    currency never change (the database refuses it), so only its balance goes stale,
    and the balance is never read from the cache."""
    if not requests:
        return []
    refs = {p.account for r in requests for p in r.postings}
    cache = account_cache if account_cache is not None else {}
    one_pg = (
        conn.dialect.name == "postgresql"
        and len(requests) == 1
        and requests[0].reverses_entry_id is None
        and all(ref in cache for ref in refs)
    )
    if one_pg:
        # The accounts are locked inside the single statement of _post_one_pg.
        accounts: Mapping[AccountRef, AccountRow] = cache
    else:
        try:
            accounts = find_accounts(conn, refs, lock=True)
        except UnknownAccountError:
            _raise_if_keys_conflict(conn, requests)
            raise
        if account_cache is not None and len(account_cache) < _ACCOUNT_CACHE_LIMIT:
            account_cache.update(accounts)
    prepared = _prepare(requests, accounts)

    if one_pg:
        new_ids = _post_one_pg(conn, next(iter(prepared.values())))
    else:
        _check_reversals(conn, prepared.values())
        new_ids = _insert_entries(conn, prepared)
    existing = [key for key in prepared if key not in new_ids]
    replays = _load_replays(conn, existing, prepared) if existing else {}

    new = [prepared[key] for key in sorted(new_ids, key=new_ids.__getitem__)]
    if new and not one_pg:
        _insert_postings(conn, new, new_ids)
        _move_balances(conn, new)

    results: list[PostedEntry] = []
    for request in requests:
        key = request.idempotency_key
        if key in replays:
            results.append(replays[key])
        else:
            results.append(_posted(new_ids[key], prepared[key]))
    return results


def _prepare(
    requests: Sequence[EntryRequest], accounts: Mapping[AccountRef, AccountRow]
) -> dict[str, _Prepared]:
    prepared: dict[str, _Prepared] = {}
    for request in requests:
        rows = tuple(accounts[p.account] for p in request.postings)
        for posting, row in zip(request.postings, rows, strict=True):
            if posting.currency != row.currency:
                raise CurrencyMismatchError(
                    f"posting in {posting.currency} to account {row.code!r} kept in {row.currency}"
                )
        digest = content_hash(request, [row.code for row in rows], request.reverses_entry_id)
        key = request.idempotency_key
        earlier = prepared.get(key)
        if earlier is not None and earlier.content_hash != digest:
            raise IdempotencyConflictError(f"key {key!r} appears twice with different content")
        prepared[key] = _Prepared(request, rows, digest)
    return prepared


def _check_reversals(conn: Connection, prepared: Iterable[_Prepared]) -> None:
    targets = {p.request.reverses_entry_id: p for p in prepared if p.request.reverses_entry_id}
    if not targets:
        return
    found = {
        row.id: row.reversed_by
        for row in conn.execute(
            select(_e.c.id, _reversal_of(_e.c.id).label("reversed_by")).where(
                _e.c.id.in_(list(targets))
            )
        )
    }
    for target, item in targets.items():
        if target not in found:
            raise UnknownEntryError(f"entry {target} does not exist")
        reversed_by = found[target]
        if reversed_by is not None and reversed_by != item.request.idempotency_key:
            raise AlreadyReversedError(f"entry {target} was already reversed by {reversed_by!r}")


def _reversal_of(entry_id: Any) -> Any:
    reversal = _e.alias("reversal")
    return (
        select(reversal.c.idempotency_key)
        .where(reversal.c.reverses_entry_id == entry_id)
        .scalar_subquery()
    )


# A batch on PostgreSQL goes as one statement per table, each row's values in arrays:
# a multi-row VALUES list costs SQLAlchemy and psycopg work per value (compiling,
# splitting the query), and executemany a round of the pipeline per row. Rows keep the
# order of the arrays (WITH ORDINALITY), which is the order the general path inserts in.
_INSERT_ENTRIES_PG = """
INSERT INTO ledger_entries (idempotency_key, content_hash, effective_at, description,
                            metadata, reverses_entry_id, posting_count)
SELECT u.key, u.hash, u.effective_at, u.description, u.metadata::jsonb, u.reverses, u.count
FROM unnest(%(keys)s::text[], %(hashes)s::text[], %(effective_ats)s::timestamptz[],
            %(descriptions)s::text[], %(metadata)s::text[], %(reverses)s::bigint[],
            %(counts)s::int[])
     WITH ORDINALITY AS u(key, hash, effective_at, description, metadata, reverses, count, n)
ORDER BY u.n
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key, id
"""
_INSERT_POSTINGS_PG = """
INSERT INTO ledger_postings (entry_id, account_id, currency, amount)
SELECT u.entry_id, u.account_id, u.currency, u.amount
FROM unnest(%(entry_ids)s::bigint[], %(account_ids)s::bigint[], %(currencies)s::text[],
            %(amounts)s::bigint[]) WITH ORDINALITY AS u(entry_id, account_id, currency, amount, n)
ORDER BY u.n
"""
_MOVE_BALANCES_PG = """
UPDATE ledger_accounts AS a SET balance = a.balance + d.delta
FROM unnest(%(ids)s::bigint[], %(deltas)s::bigint[]) AS d(account_id, delta)
WHERE a.id = d.account_id
"""


def _insert_entries(conn: Connection, prepared: Mapping[str, _Prepared]) -> dict[str, int]:
    """Insert the entries whose keys are new; returns key -> id for those only. A key
    being inserted by a concurrent transaction makes ON CONFLICT wait for its outcome."""
    if conn.dialect.name == "postgresql":
        ordered = [item for _, item in sorted(prepared.items())]
        found = conn.exec_driver_sql(
            _INSERT_ENTRIES_PG,
            {
                "keys": [i.request.idempotency_key for i in ordered],
                "hashes": [i.content_hash for i in ordered],
                "effective_ats": [i.request.effective_at for i in ordered],
                "descriptions": [i.request.description for i in ordered],
                "metadata": [i.request.metadata_json for i in ordered],
                "reverses": [i.request.reverses_entry_id for i in ordered],
                "counts": [len(i.request.postings) for i in ordered],
            },
        )
        return {str(key): int(id_) for key, id_ in found}
    rows = [
        {
            "idempotency_key": key,
            "content_hash": item.content_hash,
            "effective_at": item.request.effective_at,
            "description": item.request.description,
            "metadata": item.request.metadata,
            "reverses_entry_id": item.request.reverses_entry_id,
            "posting_count": len(item.request.postings),
        }
        # Sorted keys: concurrent batches meet on the key index in one order.
        for key, item in sorted(prepared.items())
    ]
    stmt = (
        insert_or_ignore(conn, _e)
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(_e.c.idempotency_key, _e.c.id)
    )
    return {str(key): int(id_) for key, id_ in conn.execute(stmt, rows)}


# One round trip for the common single-entry transaction on PostgreSQL. The scalar
# subquery over ``locked`` runs before the entry row is built, so the accounts are
# locked FOR UPDATE in id order before anything else, as in the general path. When the
# key exists, the entry CTE is empty and nothing else is written.
_POST_ONE_PG = """
WITH locked AS (
    SELECT id FROM ledger_accounts WHERE id = ANY(%(delta_ids)s::bigint[])
    ORDER BY id FOR UPDATE
), entry AS (
    INSERT INTO ledger_entries (idempotency_key, content_hash, effective_at, description,
                                metadata, reverses_entry_id, posting_count)
    SELECT %(key)s, %(hash)s, %(effective_at)s, %(description)s, %(metadata)s::jsonb,
           %(reverses)s, %(count)s
    WHERE (SELECT count(*) FROM locked) >= 0
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), postings AS (
    INSERT INTO ledger_postings (entry_id, account_id, currency, amount)
    SELECT entry.id, p.account_id, p.currency, p.amount
    FROM entry, unnest(%(account_ids)s::bigint[], %(currencies)s::text[], %(amounts)s::bigint[])
         WITH ORDINALITY AS p(account_id, currency, amount, n)
    ORDER BY p.n
), moves AS (
    UPDATE ledger_accounts AS a SET balance = a.balance + d.delta
    FROM entry, unnest(%(delta_ids)s::bigint[], %(deltas)s::bigint[]) AS d(account_id, delta)
    WHERE a.id = d.account_id
)
SELECT id FROM entry
"""


def _post_one_pg(conn: Connection, item: _Prepared) -> dict[str, int]:
    request = item.request
    # Every account of the entry is locked, also one whose postings net to zero.
    deltas = sorted(
        {**dict.fromkeys((row.id for row in item.accounts), 0), **_deltas([item])}.items()
    )
    row = conn.exec_driver_sql(
        _POST_ONE_PG,
        {
            "key": request.idempotency_key,
            "hash": item.content_hash,
            "effective_at": request.effective_at,
            "description": request.description,
            "metadata": request.metadata_json,
            "reverses": request.reverses_entry_id,
            "count": len(request.postings),
            "account_ids": [row.id for row in item.accounts],
            "currencies": [p.currency for p in request.postings],
            "amounts": [p.amount for p in request.postings],
            "delta_ids": [account_id for account_id, _ in deltas],
            "deltas": [delta for _, delta in deltas],
        },
    ).first()
    return {} if row is None else {request.idempotency_key: int(row[0])}


def _insert_postings(conn: Connection, new: Sequence[_Prepared], ids: Mapping[str, int]) -> None:
    if conn.dialect.name == "postgresql":
        flat = [
            (ids[item.request.idempotency_key], row.id, posting.currency, posting.amount)
            for item in new
            for posting, row in zip(item.request.postings, item.accounts, strict=True)
        ]
        entry_ids, account_ids, currencies, amounts = (list(c) for c in zip(*flat, strict=True))
        conn.exec_driver_sql(
            _INSERT_POSTINGS_PG,
            {
                "entry_ids": entry_ids,
                "account_ids": account_ids,
                "currencies": currencies,
                "amounts": amounts,
            },
        )
        return
    rows = [
        {
            "entry_id": ids[item.request.idempotency_key],
            "account_id": row.id,
            "currency": posting.currency,
            "amount": posting.amount,
        }
        for item in new
        for posting, row in zip(item.request.postings, item.accounts, strict=True)
    ]
    conn.execute(insert(_p), rows)
    if conn.dialect.name == "sqlite":
        seals = [(ids[item.request.idempotency_key],) for item in new]
        conn.exec_driver_sql(_SEAL, seals)


def _deltas(items: Iterable[_Prepared]) -> dict[int, int]:
    deltas: dict[int, int] = defaultdict(int)
    for item in items:
        for posting, row in zip(item.request.postings, item.accounts, strict=True):
            deltas[row.id] += posting.amount
    return {account_id: delta for account_id, delta in deltas.items() if delta}


def _move_balances(conn: Connection, new: Sequence[_Prepared]) -> None:
    moves = sorted(_deltas(new).items())
    if moves and conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            _MOVE_BALANCES_PG, {"ids": [a for a, _ in moves], "deltas": [d for _, d in moves]}
        )
        return
    params = [{"b_account_id": account_id, "b_delta": delta} for account_id, delta in moves]
    if params:
        conn.execute(_MOVE_BALANCE, params)


def _posted(entry_id: int, item: _Prepared, *, replayed: bool = False) -> PostedEntry:
    request = item.request
    return PostedEntry(
        id=entry_id,
        idempotency_key=request.idempotency_key,
        effective_at=request.effective_at,
        description=request.description,
        metadata=request.metadata,
        reverses_entry_id=request.reverses_entry_id,
        postings=tuple(
            PostedPosting(row.id, row.code, posting.amount, posting.currency)
            for posting, row in zip(request.postings, item.accounts, strict=True)
        ),
        replayed=replayed,
    )


def _load_replays(
    conn: Connection, keys: Sequence[str], prepared: Mapping[str, _Prepared]
) -> dict[str, PostedEntry]:
    found = {
        str(key): (int(id_), str(digest))
        for key, id_, digest in conn.execute(
            select(_e.c.idempotency_key, _e.c.id, _e.c.content_hash).where(
                _e.c.idempotency_key.in_(keys)
            )
        )
    }
    replays: dict[str, PostedEntry] = {}
    for key in keys:
        entry_id, digest = found[key]
        if digest != prepared[key].content_hash:
            raise IdempotencyConflictError(
                f"key {key!r} was used for entry {entry_id} with different content"
            )
        replays[key] = load_entry(conn, entry_id, replayed=True)
    return replays


def _raise_if_keys_conflict(conn: Connection, requests: Sequence[EntryRequest]) -> None:
    keys = [r.idempotency_key for r in requests]
    used = conn.execute(select(_e.c.idempotency_key).where(_e.c.idempotency_key.in_(keys))).first()
    if used is not None:
        raise IdempotencyConflictError(
            f"key {used[0]!r} was used before; this request names accounts that do not exist"
        )


def load_entry(conn: Connection, entry_id: int, *, replayed: bool = False) -> PostedEntry:
    entry = conn.execute(select(_e).where(_e.c.id == entry_id)).mappings().first()
    if entry is None:
        raise UnknownEntryError(f"entry {entry_id} does not exist")
    postings = conn.execute(
        select(_p.c.account_id, _a.c.code, _p.c.amount, _p.c.currency)
        .join(_a, _a.c.id == _p.c.account_id)
        .where(_p.c.entry_id == entry_id)
        .order_by(_p.c.id)
    )
    metadata = entry["metadata"]
    if isinstance(metadata, str):  # some drivers hand JSON back as text
        metadata = json.loads(metadata)
    return PostedEntry(
        id=int(entry["id"]),
        idempotency_key=entry["idempotency_key"],
        effective_at=entry["effective_at"],
        description=entry["description"],
        metadata=metadata,
        reverses_entry_id=entry["reverses_entry_id"],
        postings=tuple(
            PostedPosting(int(account_id), str(code), int(amount), str(currency))
            for account_id, code, amount, currency in postings
        ),
        replayed=replayed,
    )
