"""Ledger fixtures: a migrated PostgreSQL database and a migrated SQLite file, each
shared by the session; tests keep apart by using fresh account codes and keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from ledger.accounts import AccountRow, AccountSpec
from ledger.db import READ_ONLY, make_engine
from ledger.entries import EntryRequest
from ledger.migrate import upgrade
from ledger.models import AccountType
from ledger.posting import Ledger

BACKENDS = ["sqlite", "postgresql"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_ledger_url(pg_url: str) -> str:
    upgrade(pg_url)
    return pg_url


@pytest.fixture(scope="session")
def sqlite_ledger_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('ledger') / 'nested' / 'ledger.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _engines(pg_ledger_url: str, sqlite_ledger_url: str) -> Iterator[dict[str, Engine]]:
    engines = {"postgresql": make_engine(pg_ledger_url), "sqlite": make_engine(sqlite_ledger_url)}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(_engines: dict[str, Engine], backend: str) -> Engine:
    return _engines[backend]


@pytest.fixture
def ledger(engine: Engine) -> Ledger:
    return Ledger(engine)


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def open_accounts(
    ledger: Ledger, n: int, currency: str = "USD", kind: AccountType = AccountType.ASSET
) -> list[AccountRow]:
    tag = fresh("acct")
    return ledger.get_or_create_accounts(
        [AccountSpec(f"{tag}:{i}:{currency}", kind, currency) for i in range(n)]
    )


def transfer(
    debit: AccountRow | str,
    credit: AccountRow | str,
    amount: int,
    *,
    key: str | None = None,
    currency: str = "USD",
    at: datetime = T0,
    description: str = "test transfer",
) -> EntryRequest:
    return EntryRequest.transfer(
        idempotency_key=key or fresh("key"),
        effective_at=at,
        description=description,
        debit=debit if isinstance(debit, str) else debit.code,
        credit=credit if isinstance(credit, str) else credit.code,
        amount=amount,
        currency=currency,
    )


@dataclass(frozen=True)
class Snapshot:
    entries: int
    postings: int
    balances: tuple[tuple[int, int], ...]


def snapshot(engine: Engine) -> Snapshot:
    with engine.connect().execution_options(**READ_ONLY) as conn:
        entries = conn.execute(text("SELECT count(*) FROM ledger_entries")).scalar_one()
        postings = conn.execute(text("SELECT count(*) FROM ledger_postings")).scalar_one()
        balances = conn.execute(text("SELECT id, balance FROM ledger_accounts ORDER BY id")).all()
        conn.rollback()
    return Snapshot(int(entries), int(postings), tuple((int(a), int(b)) for a, b in balances))
