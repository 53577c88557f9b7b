"""The settlement simulator's rules, without any service: conversion across currency
exponents, payout boundaries, a negative balance waiting, a failure going out again."""

from __future__ import annotations

from dunwell.settlement_book import Book, SimConfig

DAY = 86_400
T = 1_780_000_000 - 1_780_000_000 % DAY  # a midnight


def _charge(i: int, amount: int, currency: str = "eur", created: int = T) -> dict[str, object]:
    return {"id": f"ch_{i}", "amount": amount, "currency": currency, "created": created}


def test_conversion_follows_both_currencies_exponents() -> None:
    book = Book(SimConfig(exchange_rates={"JPY": "0.0061"}))
    txn = book.add_charge(_charge(1, 10_000, "jpy"), card_country="JP")
    assert txn is not None
    # 10,000 JPY (no minor unit) at 0.0061 EUR per yen = 61.00 EUR = 6,100 cents.
    assert (txn.amount, txn.currency, txn.exchange_rate) == (6_100, "EUR", "0.0061")
    assert txn.fee == round(6_100 * 0.039) + 30  # other card: 2.9 % + 1 % conversion + 30
    assert book.add_charge(_charge(1, 10_000, "jpy"), card_country="JP") is None


def test_payouts_at_boundaries_wait_for_availability_and_a_positive_balance() -> None:
    book = Book(SimConfig(available_after_seconds=2 * DAY))
    book.add_charge(_charge(1, 1_000), card_country="FR")
    assert book.run_payouts(T + DAY) == []  # not available yet
    book.add_refund(
        {"id": "re_1", "amount": 2_000, "currency": "eur", "created": T, "status": "succeeded"}
    )
    assert book.run_payouts(T + 3 * DAY) == []  # available, but the balance is negative
    book.add_charge(_charge(2, 5_000, created=T + DAY), card_country="FR")
    (payout,) = book.run_payouts(T + 4 * DAY)
    assert payout.amount == (1_000 - 40) - 2_000 + (5_000 - 100)
    assert len(payout.txn_ids) == 4  # its own transaction and the three it pays out
    assert book.run_payouts(T + 4 * DAY + 10) == []  # the same boundary pays out once
    assert [p.id for p in book.arrive(T + 4 * DAY)] == [payout.id]

    failed = book.fail_payout(payout.id, "account_closed", T + 5 * DAY)
    assert failed.status == "failed" and failed.failure_balance_transaction
    (again,) = book.run_payouts(T + 6 * DAY)
    assert again.amount == payout.amount
    assert book.balance(T + 6 * DAY) == {"EUR": {"available": 0, "pending": 0}}
