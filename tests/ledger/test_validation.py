"""Bad input raises a typed error and writes nothing."""

from __future__ import annotations

from datetime import datetime

import pytest

from ledger import (
    CurrencyMismatchError,
    EmptyEntryError,
    EntryRequest,
    IdempotencyConflictError,
    InvalidAmountError,
    InvalidEntryError,
    InvalidMetadataError,
    LedgerError,
    MetadataTooLargeError,
    NaiveDatetimeError,
    PostingRequest,
    UnbalancedEntryError,
    UnknownAccountError,
    UnknownEntryError,
    UnsupportedCurrencyError,
)
from ledger.entries import MAX_ABS_AMOUNT, MAX_METADATA_BYTES
from tests.ledger.conftest import T0, fresh, open_accounts, snapshot, transfer


def _entry(postings, **overrides):
    fields = {
        "idempotency_key": fresh(),
        "effective_at": T0,
        "description": "x",
        "postings": postings,
    }
    fields.update(overrides)
    return EntryRequest(**fields)


@pytest.mark.parametrize("amount", [1.5, 100.0, True, False, "100", None, 0])
def test_posting_amount_must_be_a_nonzero_int(amount: object) -> None:
    with pytest.raises(InvalidAmountError):
        PostingRequest("a", amount, "USD")  # type: ignore[arg-type]


def test_amount_bound() -> None:
    PostingRequest("a", MAX_ABS_AMOUNT, "USD")
    with pytest.raises(InvalidAmountError):
        PostingRequest("a", MAX_ABS_AMOUNT + 1, "USD")


def test_transfer_refuses_negative_amount() -> None:
    with pytest.raises(InvalidAmountError):
        EntryRequest.transfer(
            idempotency_key="k",
            effective_at=T0,
            description="x",
            debit="a",
            credit="b",
            amount=-5,
            currency="USD",
        )


@pytest.mark.parametrize("currency", ["usd", "XXX", "US", 840])
def test_unsupported_currency(currency: object) -> None:
    with pytest.raises(UnsupportedCurrencyError):
        PostingRequest("a", 1, currency)  # type: ignore[arg-type]


def test_unbalanced_entry() -> None:
    with pytest.raises(UnbalancedEntryError):
        _entry([PostingRequest("a", 100, "USD"), PostingRequest("b", -99, "USD")])


def test_balanced_in_sum_but_not_per_currency() -> None:
    with pytest.raises(UnbalancedEntryError):
        _entry([PostingRequest("a", 100, "USD"), PostingRequest("b", -100, "EUR")])


def test_zero_postings() -> None:
    with pytest.raises(EmptyEntryError):
        _entry([])


def test_naive_datetime() -> None:
    with pytest.raises(NaiveDatetimeError):
        _entry(
            [PostingRequest("a", 1, "USD"), PostingRequest("b", -1, "USD")],
            effective_at=datetime(2026, 1, 1),
        )


def test_metadata_too_large() -> None:
    postings = [PostingRequest("a", 1, "USD"), PostingRequest("b", -1, "USD")]
    _entry(postings, metadata={"k": "x" * (MAX_METADATA_BYTES - 20)})
    with pytest.raises(MetadataTooLargeError):
        _entry(postings, metadata={"k": "x" * MAX_METADATA_BYTES})


@pytest.mark.parametrize("metadata", [{"k": {1, 2}}, {"k": float("nan")}, ["a"], {1: "a"}])
def test_metadata_must_be_a_json_object(metadata: object) -> None:
    with pytest.raises(InvalidMetadataError):
        _entry([PostingRequest("a", 1, "USD"), PostingRequest("b", -1, "USD")], metadata=metadata)


@pytest.mark.parametrize("key", ["", "k" * 201, 5])
def test_idempotency_key_shape(key: object) -> None:
    with pytest.raises(InvalidEntryError):
        _entry([PostingRequest("a", 1, "USD"), PostingRequest("b", -1, "USD")], idempotency_key=key)


def test_errors_share_one_base() -> None:
    for error in (
        UnbalancedEntryError,
        UnknownAccountError,
        CurrencyMismatchError,
        InvalidAmountError,
        MetadataTooLargeError,
        IdempotencyConflictError,
    ):
        assert issubclass(error, LedgerError)


def test_unknown_account_writes_nothing(ledger, engine) -> None:
    (known,) = open_accounts(ledger, 1)
    before = snapshot(engine)
    with pytest.raises(UnknownAccountError):
        ledger.post(transfer(known, "no-such-account:USD", 10))
    with pytest.raises(UnknownAccountError):
        ledger.post(_entry([PostingRequest(known.id, 5, "USD"), PostingRequest(10**12, -5, "USD")]))
    assert snapshot(engine) == before


def test_currency_mismatch_writes_nothing(ledger, engine) -> None:
    usd = open_accounts(ledger, 1, "USD")[0]
    eur = open_accounts(ledger, 1, "EUR")[0]
    before = snapshot(engine)
    with pytest.raises(CurrencyMismatchError):
        ledger.post(
            _entry([PostingRequest(usd.code, 5, "EUR"), PostingRequest(eur.code, -5, "EUR")])
        )
    assert snapshot(engine) == before


def test_bad_entry_in_a_batch_writes_nothing(ledger, engine) -> None:
    a, b = open_accounts(ledger, 2)
    before = snapshot(engine)
    good = [transfer(a, b, 10 + i) for i in range(5)]
    with pytest.raises(UnknownAccountError):
        ledger.post_batch([*good, transfer(a, "missing:USD", 3)])
    with pytest.raises(IdempotencyConflictError):
        ledger.post_batch([*good, transfer(a, b, 99, key=good[0].idempotency_key)])
    assert snapshot(engine) == before


def test_reversing_an_unknown_entry(ledger, engine) -> None:
    before = snapshot(engine)
    with pytest.raises(UnknownEntryError):
        ledger.reverse(10**12, idempotency_key=fresh(), effective_at=T0, description="x")
    assert snapshot(engine) == before
