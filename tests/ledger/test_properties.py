"""Random sequences of valid and invalid entries against a plain Python model."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import EntryRequest, LedgerError, PostingRequest
from ledger.db import READ_ONLY
from ledger.queries import postings_sum
from tests.ledger.conftest import T0, fresh, open_accounts, snapshot
from tests.support.mutation import examples

CURRENCIES = ["USD", "JPY", "KWD"]
ACCOUNTS_PER_CURRENCY = 3

# One step: a list of (account index, currency index, amount) legs, plus how to spoil it.
legs = st.lists(
    st.tuples(
        st.integers(0, ACCOUNTS_PER_CURRENCY - 1),
        st.integers(0, len(CURRENCIES) - 1),
        st.integers(1, 10**9),
    ),
    min_size=1,
    max_size=4,
)
spoilers = st.sampled_from(
    [None, None, None, "unbalanced", "wrong_currency", "unknown_account", "float", "conflict"]
)
steps = st.lists(st.tuples(legs, spoilers, st.booleans()), min_size=1, max_size=8)


@settings(
    max_examples=examples(50),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=steps)
def test_random_entries_keep_the_books_exact(ledger, engine, steps) -> None:
    accounts = {c: open_accounts(ledger, ACCOUNTS_PER_CURRENCY, c) for c in CURRENCIES}
    model: dict[int, int] = defaultdict(int)
    posted: list[EntryRequest] = []

    for step_legs, spoiler, as_batch in steps:
        postings = []
        for account_index, currency_index, amount in step_legs:
            currency = CURRENCIES[currency_index]
            debit = accounts[currency][account_index]
            credit = accounts[currency][(account_index + 1) % ACCOUNTS_PER_CURRENCY]
            postings += [(debit, amount, currency), (credit, -amount, currency)]
        if spoiler == "unbalanced":
            postings[-1] = (postings[-1][0], postings[-1][1] - 1, postings[-1][2])
        elif spoiler == "wrong_currency":
            other = "EUR"
            postings += [(postings[0][0], 5, other), (postings[1][0], -5, other)]
        key = fresh()
        if spoiler == "conflict" and posted:
            key = posted[0].idempotency_key

        before = snapshot(engine)
        try:
            if spoiler == "unknown_account":
                raw = [PostingRequest(a.code, amt, cur) for a, amt, cur in postings]
                raw += [
                    PostingRequest(fresh("nope"), 1, "USD"),
                    PostingRequest(fresh("nope"), -1, "USD"),
                ]
            elif spoiler == "float":
                raw = [PostingRequest(a.code, float(amt), cur) for a, amt, cur in postings]  # type: ignore[arg-type]
            else:
                raw = [PostingRequest(a.code, amt, cur) for a, amt, cur in postings]
            request = EntryRequest(
                idempotency_key=key, effective_at=T0, description="prop", postings=raw
            )
            if as_batch:
                (result,) = ledger.post_batch([request])
            else:
                result = ledger.post(request)
        except LedgerError:
            assert spoiler is not None
            assert snapshot(engine) == before
            continue
        if result.replayed:
            # A reused key with the very same content is a replay, not a conflict.
            assert spoiler == "conflict"
            assert snapshot(engine) == before
            continue
        assert spoiler is None or (spoiler == "conflict" and not posted)
        posted.append(request)
        for account, amount, _ in postings:
            model[account.id] += amount

    report = ledger.trial_balance()
    assert report.balanced
    assert all(t.net == 0 for t in report.currencies)
    with engine.connect().execution_options(**READ_ONLY) as conn:
        sums = {a.id: postings_sum(conn, a.id) for group in accounts.values() for a in group}
    for group in accounts.values():
        for account in group:
            stored = ledger.balance(account.id).amount
            assert stored == sums[account.id] == model[account.id]
