"""The ledger activity posts idempotently and turns ledger errors into final failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.ledger import AccountLine, JournalEntryInput, LedgerActivities
from ledger.db import make_engine
from ledger.migrate import upgrade
from ledger.models import AccountType
from ledger.posting import Ledger
from tests.conftest import create_database, drop_database

AT = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
def ledger():
    url = create_database()
    try:
        upgrade(url)
        engine = make_engine(url)
        yield Ledger(engine)
        engine.dispose()
    finally:
        drop_database(url)


def invoice_entry(key: str, amount: int = 1190) -> JournalEntryInput:
    return JournalEntryInput(
        idempotency_key=key,
        effective_at=AT,
        description="invoice issued",
        lines=[
            AccountLine("receivable:cus_1:EUR", AccountType.ASSET, "EUR", amount, "cus_1"),
            AccountLine("revenue:EUR", AccountType.REVENUE, "EUR", -1000),
            AccountLine("tax_payable:DE:EUR", AccountType.LIABILITY, "EUR", -(amount - 1000)),
        ],
    )


async def test_retried_activity_posts_once(ledger: Ledger) -> None:
    acts = LedgerActivities(ledger)
    env = ActivityEnvironment()
    first = await env.run(acts.post_entries, [invoice_entry("inv_1:issued")])
    again = await env.run(acts.post_entries, [invoice_entry("inv_1:issued")])
    assert [r.entry_id for r in again] == [r.entry_id for r in first]
    assert (first[0].replayed, again[0].replayed) == (False, True)
    assert ledger.balance("receivable:cus_1:EUR").amount == 1190
    assert ledger.trial_balance().balanced


async def test_conflicting_replay_is_a_final_failure(ledger: Ledger) -> None:
    acts = LedgerActivities(ledger)
    env = ActivityEnvironment()
    await env.run(acts.post_entries, [invoice_entry("inv_2:issued")])
    with pytest.raises(ApplicationError) as err:
        await env.run(acts.post_entries, [invoice_entry("inv_2:issued", amount=1200)])
    assert err.value.type == "IdempotencyConflictError"
    assert err.value.non_retryable
    assert ledger.balance("receivable:cus_1:EUR").amount == 1190
