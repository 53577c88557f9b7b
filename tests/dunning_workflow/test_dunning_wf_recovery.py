"""Soft declines end to end: retried on schedule until the charge goes through."""

from __future__ import annotations

from datetime import timedelta

from billing.declines import CUSTOMER_MESSAGES, CustomerMessage
from billing.dunning import NotificationKind, RetryAt, notification_key
from stores.notifications import notifications_for_customer
from tests.dunning_workflow.harness import Dunning, decline_of, record_history
from workflows.search_attributes import (
    DUNNING_ATTEMPT,
    LAST_DECLINE_CODE,
    NEXT_RETRY_AT,
    POLICY_VERSION,
)


async def test_insufficient_funds_recovers_on_the_third_retry(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.decline("decline_insufficient_funds")
    scripted.decline("decline_insufficient_funds")
    scripted.succeed()
    invoice = dunning.invoice()
    await dunning.move_clock_to_a_quiet_early_morning()  # a reminder is always planned
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))

    first = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))
    assert first.next_retry_at is not None
    described = await handle.describe()
    attributes = described.typed_search_attributes
    assert attributes.get(DUNNING_ATTEMPT) == 1
    assert attributes.get(POLICY_VERSION) == "standard@v2"
    assert attributes.get(LAST_DECLINE_CODE) == "insufficient_funds"
    assert attributes.get(NEXT_RETRY_AT) == first.next_retry_at

    result = await handle.result()

    assert result.outcome == "recovered"
    assert result.attempts == 4  # the renewal charge, two declined retries, the success
    assert scripted.keys == [f"{invoice.id}:dunning:{n}" for n in (2, 3, 4)]
    assert scripted.unscripted == 0
    paid = dunning.store.get(invoice.id)
    assert paid.status == "paid" and paid.amount_remaining == 0

    kinds = dunning.kinds()
    assert kinds.count("failure_notice") == 3
    assert kinds.count("retry_reminder") >= 1
    assert kinds[-1] == "recovered"
    mails = dunning.mails()
    assert len({m.key for m in mails}) == len(mails)  # each key once
    failure = mails[0]
    assert failure.key == notification_key(invoice.id, NotificationKind.FAILURE_NOTICE, 1)
    assert CUSTOMER_MESSAGES[CustomerMessage.ADD_FUNDS_OR_OTHER_METHOD] in failure.body
    assert "https://billing.example.test/portal" in failure.body
    assert failure.to == "ada@example.test"
    assert "Payment received" in mails[-1].subject

    rows = notifications_for_customer(dunning.engine, invoice.customer_id)
    assert {r.key for r in rows} == {m.key for m in mails}
    assert all(r.status == "sent" and r.send_attempts == 1 for r in rows)
    await record_history(handle, "dunning_recovered")


async def test_issuer_outage_is_retried_sooner(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.succeed()
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_processing_error"))
    view = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))
    assert isinstance(view.decision, RetryAt)
    assert view.decision.reason == "issuer_outage"
    failed_at = view.state.attempts[-1].at
    # standard@v2: an outage retry comes 1 to 3 hours after the failure, not a day later.
    assert timedelta(hours=1) <= view.decision.when - failed_at <= timedelta(hours=3)
    result = await handle.result()
    assert result.outcome == "recovered" and result.attempts == 2
    assert CUSTOMER_MESSAGES[CustomerMessage.TEMPORARY_PROBLEM] in dunning.mails()[0].body
