"""Concurrent writers lose no update, see no deadlock, and write a key once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from ledger import AlreadyReversedError, EntryRequest, PostingRequest
from ledger.posting import Ledger
from tests.ledger.conftest import T0, fresh, open_accounts, snapshot, transfer

THREADS = 8
PER_THREAD = 50


def _run_together(n: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(n)

    def start(i: int) -> object:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(start, range(n)))


def test_concurrent_postings_keep_balances_exact(_engines) -> None:
    ledger = Ledger(_engines["postgresql"])
    accounts = open_accounts(ledger, 3)
    expected = {acct.id: 0 for acct in accounts}
    plans: list[list[EntryRequest]] = []
    for t in range(THREADS):
        plan = []
        for i in range(PER_THREAD):
            # Thread-dependent direction so transactions lock the same rows from both
            # ends of the posting list; locks must still be taken in id order.
            x, y, z = accounts if (t + i) % 2 else accounts[::-1]
            amount = 1 + (t * PER_THREAD + i) % 97
            plan.append(
                EntryRequest(
                    idempotency_key=fresh(),
                    effective_at=T0,
                    description="concurrent",
                    postings=[
                        PostingRequest(x.code, amount, "USD"),
                        PostingRequest(y.code, amount, "USD"),
                        PostingRequest(z.code, -2 * amount, "USD"),
                    ],
                )
            )
            expected[x.id] += amount
            expected[y.id] += amount
            expected[z.id] -= 2 * amount
        plans.append(plan)

    def work(t: int) -> int:
        for request in plans[t]:
            ledger.post(request)
        return t

    _run_together(THREADS, work)
    for acct in accounts:
        assert ledger.balance(acct.id).amount == expected[acct.id]
        assert ledger.statement(acct.id).closing_balance == expected[acct.id]


def test_concurrent_batches_on_postgresql(_engines) -> None:
    ledger = Ledger(_engines["postgresql"])
    accounts = open_accounts(ledger, 4)

    def work(t: int) -> int:
        for _ in range(5):
            batch = [
                transfer(accounts[(t + i) % 4], accounts[(t + i + 1) % 4], 3) for i in range(20)
            ]
            ledger.post_batch(batch)
        return t

    _run_together(4, work)
    assert sum(ledger.balance(a.id).amount for a in accounts) == 0
    assert ledger.trial_balance().balanced


def test_concurrent_postings_on_sqlite(_engines) -> None:
    ledger = Ledger(_engines["sqlite"])
    a, b = open_accounts(ledger, 2)

    def work(t: int) -> int:
        for _ in range(20):
            ledger.post(transfer(a, b, 7))
        return t

    _run_together(4, work)
    assert ledger.balance(a.code).amount == 4 * 20 * 7


@pytest.mark.parametrize("backend_name", ["postgresql", "sqlite"])
def test_concurrent_same_key_writes_one_entry(_engines, backend_name: str) -> None:
    engine = _engines[backend_name]
    ledger = Ledger(engine)
    a, b = open_accounts(ledger, 2)
    request = transfer(a, b, 333)
    results = _run_together(THREADS, lambda _: ledger.post(request))
    ids = {r.id for r in results}  # type: ignore[attr-defined]
    assert len(ids) == 1
    assert sum(not r.replayed for r in results) == 1  # type: ignore[attr-defined]
    assert ledger.balance(a.code).amount == 333
    before = snapshot(engine)
    for _ in range(3):
        ledger.post(request)
    assert snapshot(engine) == before


def test_concurrent_reversals_reverse_once(_engines) -> None:
    ledger = Ledger(_engines["postgresql"])
    a, b = open_accounts(ledger, 2)
    entry = ledger.post(transfer(a, b, 50))

    def work(t: int) -> object:
        try:
            return ledger.reverse(
                entry.id, idempotency_key=fresh(), effective_at=T0, description="r"
            )
        except AlreadyReversedError as exc:
            return exc

    outcomes = _run_together(4, work)
    assert sum(isinstance(o, AlreadyReversedError) for o in outcomes) == 3
    assert ledger.balance(a.code).amount == 0
