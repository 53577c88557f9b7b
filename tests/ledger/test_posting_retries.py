"""The ledger service's second chance: a cached account that was deleted and created
again is looked up afresh, a reversal that loses a race becomes ``AlreadyReversedError``,
and every other integrity error reaches the caller unchanged and untried again."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from ledger import AlreadyReversedError, journal
from ledger.accounts import AccountSpec
from ledger.errors import CurrencyMismatchError
from ledger.posting import Ledger
from tests.ledger.conftest import T0, fresh, open_accounts, transfer


def _delete_accounts(ledger: Ledger, *ids: int) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(text("DELETE FROM ledger_accounts WHERE id = ANY(:ids)"), {"ids": list(ids)})


def test_a_deleted_cached_account_is_looked_up_again(_engines) -> None:
    # Only PostgreSQL posts a single entry straight from the account cache.
    ledger = Ledger(_engines["postgresql"])
    a, b = open_accounts(ledger, 2)
    # A refused posting still resolves (and caches) both accounts; nothing is written.
    with pytest.raises(CurrencyMismatchError):
        ledger.post(transfer(a, b, 100, currency="EUR"))
    # Accounts without postings may be deleted; created again, they get new ids.
    _delete_accounts(ledger, a.id, b.id)
    a2, b2 = ledger.get_or_create_accounts(
        [AccountSpec(a.code, a.type, a.currency), AccountSpec(b.code, b.type, b.currency)]
    )
    assert (a2.id, b2.id) != (a.id, b.id)
    posted = ledger.post(transfer(a.code, b.code, 100))
    assert [p.account_id for p in posted.postings] == [a2.id, b2.id]
    assert ledger.balance(a2.id).amount == 100
    # The cache now holds the new rows: the next post needs no second try.
    ledger.post(transfer(a.code, b.code, 5))
    assert ledger.balance(b2.id).amount == -105


@pytest.mark.parametrize("backend_name", ["postgresql", "sqlite"])
def test_a_reversal_that_loses_the_race_is_already_reversed(
    _engines, backend_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger(_engines[backend_name])
    a, b = open_accounts(ledger, 2)
    entry = ledger.post(transfer(a, b, 50))
    first = ledger.reverse(entry.id, idempotency_key=fresh(), effective_at=T0, description="r")
    # The second reversal checked before the first committed: only the database's
    # unique reverses_entry_id stops it.
    monkeypatch.setattr(journal, "_check_reversals", lambda conn, prepared: None)
    with pytest.raises(AlreadyReversedError, match="concurrent"):
        ledger.reverse(entry.id, idempotency_key=fresh(), effective_at=T0, description="r2")
    assert ledger.balance(a.code).amount == 0
    assert ledger.entry(first.id).reverses_entry_id == entry.id


STALE = 'violates foreign key constraint "fk_ledger_postings_account_id_currency_ledger_accounts"'
REVERSED = 'duplicate key value violates unique constraint "uq_ledger_entries_reverses_entry_id"'
OTHER = 'duplicate key value violates unique constraint "uq_ledger_accounts_code"'


def _cached_ledger(_engines) -> Ledger:
    ledger = Ledger(_engines["sqlite"])
    a, b = open_accounts(ledger, 2)
    with pytest.raises(CurrencyMismatchError):
        ledger.post(transfer(a, b, 1, currency="EUR"))
    return ledger


@pytest.mark.parametrize(
    ("cached", "messages", "raised", "calls"),
    [
        # Nothing cached: a stale account cannot be the cause, no second try.
        (False, [STALE, STALE], IntegrityError, 1),
        # Cached: one second try with the cache emptied, and its error is final.
        (True, [STALE, STALE], IntegrityError, 2),
        (True, [STALE, REVERSED], AlreadyReversedError, 2),
        (True, [STALE, None], None, 2),
        # Any other integrity error is the caller's, at once.
        (True, [OTHER, None], IntegrityError, 1),
        (False, [OTHER, None], IntegrityError, 1),
        (True, [REVERSED, None], AlreadyReversedError, 1),
    ],
)
def test_transact_retries_only_a_stale_cached_account(
    _engines,
    cached: bool,
    messages: list[str | None],
    raised: type[Exception] | None,
    calls: int,
) -> None:
    ledger = _cached_ledger(_engines) if cached else Ledger(_engines["sqlite"])
    assert bool(ledger._accounts) is cached
    seen: list[int] = []

    def work(conn: Connection) -> str:
        message = messages[len(seen)]
        seen.append(len(ledger._accounts))
        if message is not None:
            raise IntegrityError("INSERT ...", {}, Exception(message))
        return "done"

    if raised is None:
        assert ledger._transact(work) == "done"
    else:
        with pytest.raises(raised) as info:
            ledger._transact(work)
        if raised is IntegrityError:
            assert messages[calls - 1] in str(info.value)
    assert len(seen) == calls
    if calls == 2:
        assert seen[1] == 0  # the second try starts from an empty cache
