"""Posting, idempotent replay, reversal, balances, statements and the trial balance."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.money import Money
from ledger import (
    AlreadyReversedError,
    EntryRequest,
    IdempotencyConflictError,
    PostingRequest,
    chart,
)
from ledger.accounts import AccountSpec
from ledger.db import READ_ONLY
from ledger.errors import AccountConflictError
from ledger.models import AccountType
from ledger.queries import postings_sum
from tests.ledger.conftest import T0, fresh, open_accounts, snapshot, transfer


def test_post_moves_balances_and_returns_the_entry(ledger) -> None:
    a, b = open_accounts(ledger, 2)
    posted = ledger.post(transfer(a, b, 1250))
    assert [(p.account_code, p.amount) for p in posted.postings] == [
        (a.code, 1250),
        (b.code, -1250),
    ]
    assert not posted.replayed
    assert ledger.balance(a.code) == Money(1250, "USD")
    assert ledger.balance(b.id) == Money(-1250, "USD")
    assert ledger.entry(posted.id) == posted


def test_replay_returns_the_original_and_writes_once(ledger, engine) -> None:
    a, b = open_accounts(ledger, 2)
    request = transfer(a, b, 700)
    first = ledger.post(request)
    before = snapshot(engine)
    for _ in range(5):
        again = ledger.post(request)
        assert again.replayed and again.id == first.id
    # Same content with accounts named by id and postings reordered is the same entry.
    reordered = EntryRequest(
        idempotency_key=request.idempotency_key,
        effective_at=request.effective_at,
        description=request.description,
        postings=[PostingRequest(b.id, -700, "USD"), PostingRequest(a.id, 700, "USD")],
    )
    assert ledger.post(reordered).id == first.id
    assert snapshot(engine) == before
    assert ledger.balance(a.code).amount == 700


@pytest.mark.parametrize(
    "change",
    ["amount", "description", "effective_at", "account", "metadata"],
)
def test_same_key_different_content_conflicts(ledger, engine, change: str) -> None:
    a, b, c = open_accounts(ledger, 3)
    original = transfer(a, b, 500)
    ledger.post(original)
    fields = {
        "idempotency_key": original.idempotency_key,
        "effective_at": original.effective_at,
        "description": original.description,
        "debit": a.code,
        "credit": b.code,
        "amount": 500,
        "currency": "USD",
    }
    changed = {
        "amount": {"amount": 501},
        "description": {"description": "other"},
        "effective_at": {"effective_at": original.effective_at + timedelta(seconds=1)},
        "account": {"credit": c.code},
        "metadata": {"metadata": {"invoice": "in_1"}},
    }[change]
    before = snapshot(engine)
    with pytest.raises(IdempotencyConflictError):
        ledger.post(EntryRequest.transfer(**{**fields, **changed}))
    assert snapshot(engine) == before


def test_conflicting_key_with_unknown_account_is_a_conflict(ledger) -> None:
    a, b = open_accounts(ledger, 2)
    original = ledger.post(transfer(a, b, 5))
    with pytest.raises(IdempotencyConflictError):
        ledger.post(transfer(a, "missing:USD", 5, key=original.idempotency_key))


def test_batch_posts_all_and_replays_per_entry(ledger, engine) -> None:
    a, b, c = open_accounts(ledger, 3)
    earlier = ledger.post(transfer(a, b, 1))
    batch = [earlier_request := transfer(a, b, 1, key=earlier.idempotency_key)]
    batch += [transfer(b, c, 10 * i) for i in range(1, 21)]
    batch.append(batch[3])  # the same key twice in one batch is one entry
    results = ledger.post_batch(batch)
    assert results[0].replayed and results[0].id == earlier.id
    assert results[3].id == results[-1].id
    assert len({r.id for r in results}) == 21
    assert ledger.balance(c.code).amount == -sum(10 * i for i in range(1, 21))
    assert earlier_request.idempotency_key == earlier.idempotency_key
    before = snapshot(engine)
    assert [r.id for r in ledger.post_batch(batch)] == [r.id for r in results]
    assert snapshot(engine) == before


def test_reverse_once(ledger, engine) -> None:
    a, b = open_accounts(ledger, 2)
    original = ledger.post(transfer(a, b, 900))
    key = fresh()
    reversal = ledger.reverse(original.id, idempotency_key=key, effective_at=T0, description="undo")
    assert reversal.reverses_entry_id == original.id
    assert sorted(p.amount for p in reversal.postings) == [-900, 900]
    assert ledger.balance(a.code).amount == 0
    # Replaying the reversal is idempotent; a second, different reversal is refused.
    replay = ledger.reverse(original.id, idempotency_key=key, effective_at=T0, description="undo")
    assert replay.replayed and replay.id == reversal.id
    before = snapshot(engine)
    with pytest.raises(AlreadyReversedError):
        ledger.reverse(original.id, idempotency_key=fresh(), effective_at=T0, description="again")
    assert snapshot(engine) == before


def test_balance_at_a_point_in_time_and_statement(ledger) -> None:
    a, b = open_accounts(ledger, 2)
    days = [T0 + timedelta(days=d) for d in range(5)]
    for day, amount in zip(days, [100, 200, -50, 400, 25], strict=True):
        if amount > 0:
            ledger.post(transfer(a, b, amount, at=day))
        else:
            ledger.post(transfer(b, a, -amount, at=day))
    assert ledger.balance(a.code, at=days[0] - timedelta(seconds=1)).amount == 0
    assert ledger.balance(a.code, at=days[0]).amount == 100
    assert ledger.balance(a.code, at=days[2]).amount == 250
    assert ledger.balance(a.code, at=days[4]).amount == 675
    assert ledger.balance(a.code).amount == 675

    statement = ledger.statement(a.code, start=days[1], end=days[3])
    assert statement.opening_balance == 300
    assert [line.amount for line in statement.lines] == [-50, 400]
    assert [line.running_balance for line in statement.lines] == [250, 650]
    assert statement.closing_balance == ledger.balance(a.code, at=days[3]).amount
    full = ledger.statement(a.code)
    assert full.closing_balance == 675 and len(full.lines) == 5


@pytest.mark.parametrize("currency,amount", [("JPY", 1500), ("KWD", 12345), ("USD", 1)])
def test_zero_and_three_decimal_currencies(ledger, currency: str, amount: int) -> None:
    a, b = open_accounts(ledger, 2, currency)
    ledger.post(transfer(a, b, amount, currency=currency))
    assert ledger.balance(a.code) == Money(amount, currency)
    totals = {t.currency: t for t in ledger.trial_balance().currencies}
    assert totals[currency].net == 0 and totals[currency].debits >= amount


def test_multi_currency_entry(ledger) -> None:
    usd_a, usd_b = open_accounts(ledger, 2, "USD")
    eur_a, eur_b = open_accounts(ledger, 2, "EUR")
    entry = EntryRequest(
        idempotency_key=fresh(),
        effective_at=T0,
        description="fx",
        postings=[
            PostingRequest(usd_a.code, 100, "USD"),
            PostingRequest(usd_b.code, -100, "USD"),
            PostingRequest(eur_a.code, 92, "EUR"),
            PostingRequest(eur_b.code, -92, "EUR"),
        ],
        metadata={"rate": "0.92"},
    )
    posted = ledger.post(entry)
    assert posted.metadata == {"rate": "0.92"}
    assert ledger.balance(eur_b.code) == Money(-92, "EUR")


def test_trial_balance_nets_to_zero_and_matches_postings(ledger) -> None:
    a, b, c = open_accounts(ledger, 3)
    ledger.post_batch([transfer(a, b, 10), transfer(b, c, 7), transfer(c, a, 3)])
    report = ledger.trial_balance()
    assert report.balanced
    balances = {acct.code: acct.balance for acct in report.accounts}
    assert (balances[a.code], balances[b.code], balances[c.code]) == (7, -3, -4)
    with ledger.engine.connect().execution_options(**READ_ONLY) as conn:
        sums = [postings_sum(conn, acct.code) for acct in (a, b, c)]
    assert sums == [ledger.balance(acct.code).amount for acct in (a, b, c)]


def test_chart_get_or_create(ledger) -> None:
    customer = fresh("cus")
    book = chart.Chart(ledger)
    ar = book.accounts_receivable(customer, "EUR")
    assert (ar.type, ar.currency, ar.customer_id) == (AccountType.ASSET, "EUR", customer)
    assert book.accounts_receivable(customer, "EUR").id == ar.id
    assert book.accounts_receivable(customer, "USD").id != ar.id
    credit = book.customer_credit(customer, "EUR")
    assert credit.type is AccountType.LIABILITY and credit.customer_id == customer
    tax = book.tax_payable("DE", "EUR")
    assert tax.code == "tax_payable:DE:EUR" and tax.customer_id is None
    kinds = {
        book.revenue("EUR").type,
        book.gateway_clearing("EUR").type,
        book.gateway_fees("EUR").type,
        book.cash("EUR").type,
    }
    assert kinds == {AccountType.REVENUE, AccountType.ASSET, AccountType.EXPENSE}
    # A sale, its payment through the gateway, the fee and the payout.
    key = fresh()
    ledger.post_batch(
        [
            EntryRequest(
                idempotency_key=f"{key}-invoice",
                effective_at=T0,
                description="invoice",
                postings=[
                    PostingRequest(ar.code, 11900, "EUR"),
                    PostingRequest(book.revenue("EUR").code, -10000, "EUR"),
                    PostingRequest(tax.code, -1900, "EUR"),
                ],
            ),
            transfer(book.gateway_clearing("EUR"), ar, 11900, currency="EUR", key=f"{key}-pay"),
        ]
    )
    assert ledger.balance(ar.code).amount == 0


def test_get_or_create_refuses_a_different_definition(ledger) -> None:
    code = f"{fresh()}:USD"
    ledger.get_or_create_account(AccountSpec(code, AccountType.ASSET, "USD"))
    with pytest.raises(AccountConflictError):
        ledger.get_or_create_account(AccountSpec(code, AccountType.EXPENSE, "USD"))
