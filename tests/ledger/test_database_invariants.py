"""The database itself refuses what the ledger must never contain, whatever SQL is sent."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from tests.ledger.conftest import fresh, open_accounts, transfer


def _raw(engine, *statements, params=None):
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), params or {})


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET description = 'edited' WHERE id = :entry",
        "UPDATE ledger_entries SET effective_at = effective_at WHERE id = :entry",
        "DELETE FROM ledger_entries WHERE id = :entry",
        "UPDATE ledger_postings SET amount = amount + 1 WHERE entry_id = :entry",
        "DELETE FROM ledger_postings WHERE entry_id = :entry",
    ],
)
def test_entries_and_postings_are_immutable(ledger, engine, statement: str) -> None:
    a, b = open_accounts(ledger, 2)
    entry = ledger.post(transfer(a, b, 42))
    with pytest.raises(DBAPIError, match="immutable"):
        _raw(engine, statement, params={"entry": entry.id})
    assert ledger.entry(entry.id) == entry


def test_truncate_is_refused_on_postgresql(_engines) -> None:
    with pytest.raises(DBAPIError, match="immutable"):
        _raw(_engines["postgresql"], "TRUNCATE ledger_postings")


def _insert_entry(key: str, count: int) -> str:
    return (
        "INSERT INTO ledger_entries (idempotency_key, content_hash, effective_at, description,"
        f" metadata, posting_count) VALUES ('{key}', 'h', '2026-01-01 00:00:00', 'raw', '{{}}', {count})"
    )


def _insert_posting(key: str, account_id: int, amount: int, currency: str = "USD") -> str:
    return (
        "INSERT INTO ledger_postings (entry_id, account_id, currency, amount) SELECT id,"
        f" {account_id}, '{currency}', {amount} FROM ledger_entries WHERE idempotency_key = '{key}'"
    )


def _seal(backend: str, key: str) -> list[str]:
    if backend != "sqlite":
        return []
    return [
        f"INSERT INTO ledger_entry_seals SELECT id FROM ledger_entries WHERE idempotency_key = '{key}'"
    ]


def test_balanced_raw_entry_is_accepted(ledger, engine, backend) -> None:
    # The control case: the same raw SQL as below, balanced, commits.
    a, b = open_accounts(ledger, 2)
    key = fresh()
    _raw(
        engine,
        _insert_entry(key, 2),
        _insert_posting(key, a.id, 5),
        _insert_posting(key, b.id, -5),
        *_seal(backend, key),
    )


def test_unbalanced_raw_entry_is_rejected_at_commit(ledger, engine, backend) -> None:
    a, b = open_accounts(ledger, 2)
    key = fresh()
    with pytest.raises(DBAPIError):
        _raw(
            engine,
            _insert_entry(key, 2),
            _insert_posting(key, a.id, 5),
            _insert_posting(key, b.id, -4),
            *_seal(backend, key),
        )
    with pytest.raises(DBAPIError):  # balanced per sum, not per currency
        eur = open_accounts(ledger, 1, "EUR")[0]
        _raw(
            engine,
            _insert_entry(key, 2),
            _insert_posting(key, a.id, 5),
            _insert_posting(key, eur.id, -5, "EUR"),
            *_seal(backend, key),
        )
    assert ledger.balance(a.code).amount == 0


def test_entry_without_all_its_postings_is_rejected_at_commit(ledger, engine, backend) -> None:
    a, b = open_accounts(ledger, 2)
    key = fresh()
    with pytest.raises(DBAPIError):
        _raw(
            engine,
            _insert_entry(key, 4),
            _insert_posting(key, a.id, 5),
            _insert_posting(key, b.id, -5),
            *_seal(backend, key),
        )


def test_entry_without_postings_or_seal_is_rejected_at_commit(engine) -> None:
    with pytest.raises(DBAPIError):
        _raw(engine, _insert_entry(fresh(), 2))


def test_postings_cannot_join_a_committed_entry(ledger, engine) -> None:
    a, b = open_accounts(ledger, 2)
    entry = ledger.post(transfer(a, b, 5))
    with pytest.raises(DBAPIError):
        _raw(
            engine,
            _insert_posting(entry.idempotency_key, a.id, 7),
            _insert_posting(entry.idempotency_key, b.id, -7),
        )
    assert len(ledger.entry(entry.id).postings) == 2


def test_posting_currency_must_match_account(ledger, engine, backend) -> None:
    a, b = open_accounts(ledger, 2)
    key = fresh()
    with pytest.raises(DBAPIError):
        _raw(
            engine,
            _insert_entry(key, 2),
            _insert_posting(key, a.id, 5, "EUR"),
            _insert_posting(key, b.id, -5, "EUR"),
            *_seal(backend, key),
        )


@pytest.mark.parametrize(
    "column,value",
    [
        ("currency", "'EUR'"),
        ("type", "'expense'"),
        ("code", "'renamed'"),
        ("customer_id", "'cus_x'"),
    ],
)
def test_account_identity_never_changes(ledger, engine, column: str, value: str) -> None:
    (a,) = open_accounts(ledger, 1)
    with pytest.raises(DBAPIError):
        _raw(engine, f"UPDATE ledger_accounts SET {column} = {value} WHERE id = {a.id}")
    # The balance is the one mutable column.
    _raw(engine, f"UPDATE ledger_accounts SET balance = balance WHERE id = {a.id}")


def test_entry_reversed_at_most_once_in_the_database(ledger, engine, backend) -> None:
    a, b = open_accounts(ledger, 2)
    entry = ledger.post(transfer(a, b, 5))
    ledger.reverse(
        entry.id, idempotency_key=fresh(), effective_at=entry.effective_at, description="r"
    )
    key = fresh()
    with pytest.raises(DBAPIError):
        _raw(
            engine,
            _insert_entry(key, 2)
            .replace("posting_count)", "posting_count, reverses_entry_id)")
            .replace(", 2)", f", 2, {entry.id})"),
            _insert_posting(key, a.id, -5),
            _insert_posting(key, b.id, 5),
            *_seal(backend, key),
        )
