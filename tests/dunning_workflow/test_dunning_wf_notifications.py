"""Each notification goes out once per key: across worker restarts and activity retries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from activities.notifications import NotificationRequest, message_id_for, render
from billing.declines import CustomerMessage
from billing.dunning import NotificationKind, RetryAt
from dunwell.smtp_sink import SmtpSink
from ledger.invoices import InvoiceStore
from stores.notifications import (
    NewNotification,
    get_notification,
    notifications_for_customer,
    record_pending,
)
from tests.dunning_workflow.harness import MAIL_FROM, PUBLIC_BASE_URL, Dunning, decline_of
from tests.dunning_workflow.scripted_stripe import ScriptedStripe


async def test_exactly_once_per_key_across_a_worker_restart(
    temporal_time_env: WorkflowEnvironment,
    dunning_engine: Engine,
    scripted: ScriptedStripe,
    sink: tuple[SmtpSink, Path],
) -> None:
    server, directory = sink
    dunning = Dunning(
        env=temporal_time_env,
        engine=dunning_engine,
        store=InvoiceStore(dunning_engine, issuer="dunwell"),
        gateway_url=scripted.url,
        scripted=scripted,
        smtp_port=server.port,
        mail_dir=directory,
    )
    scripted.decline("decline_insufficient_funds")
    scripted.succeed()
    invoice = dunning.invoice()
    await dunning.move_clock_to_a_quiet_early_morning()
    async with dunning.worker():
        handle = await dunning.start(
            invoice, first_decline=decline_of("decline_insufficient_funds")
        )
        view = await dunning.eventually(
            handle, lambda v: isinstance(v.decision, RetryAt) and bool(v.sent_notifications)
        )
    assert dunning.kinds() == ["failure_notice"]
    pending = [p.notification.kind for p in view.pending_notifications]
    assert pending == [NotificationKind.RETRY_REMINDER]

    async with dunning.worker():  # a new worker process on the same task queue
        result = await handle.result()
    dunning.close()

    assert result.outcome == "recovered"
    mails = dunning.mails()
    keys = [m.key for m in mails]
    assert len(keys) == len(set(keys)) and keys == list(result.notifications_sent)
    assert {"failure_notice", "retry_reminder", "recovered"} <= set(dunning.kinds())
    rows = notifications_for_customer(dunning_engine, invoice.customer_id)
    assert sorted(r.key for r in rows) == sorted(keys)
    assert all(r.status == "sent" and r.send_attempts == 1 for r in rows)
    assert all(m.message_id == message_id_for(m.key, MAIL_FROM) for m in mails)


def _request(customer_id: str) -> NotificationRequest:
    return NotificationRequest(
        key=f"dunning:inv_{customer_id}:failure_notice:1",
        kind=NotificationKind.FAILURE_NOTICE,
        customer_id=customer_id,
        recipient="ada@example.test",
        invoice_id=f"inv_{customer_id}",
        subscription_id="sub_1",
        amount=2975,
        currency="EUR",
        message=CustomerMessage.GENERIC_DECLINE,
    )


async def test_a_send_cut_short_is_repeated_with_the_same_message_id_then_never_again(
    dunning: Dunning,
) -> None:
    notifier = dunning.notifier()
    request = _request("cus_crash_after_send")
    # A worker died after the relay accepted the message, before marking the row sent.
    rendered = render(request, public_base_url=PUBLIC_BASE_URL)
    row = record_pending(
        dunning.engine,
        NewNotification(
            key=request.key,
            customer_id=request.customer_id,
            subscription_id=request.subscription_id,
            invoice_id=request.invoice_id,
            kind=request.kind.value,
            recipient=request.recipient,
            subject=rendered.subject,
            body=rendered.body,
            message_id=message_id_for(request.key, MAIL_FROM),
        ),
        now=datetime.now(UTC),
    )
    await asyncio.to_thread(notifier._deliver, row)

    retried = await notifier.send(request)  # the activity's retry
    assert retried.sent_now
    again = await notifier.send(request)  # any later retry
    assert not again.sent_now

    mails = dunning.mails()
    assert len(mails) == 2  # at-least-once: the one duplicate SMTP cannot rule out ...
    assert mails[0].message_id == mails[1].message_id  # ... carries the same Message-ID
    assert mails[0].body == mails[1].body
    stored = get_notification(dunning.engine, request.key)
    assert stored is not None and stored.status == "sent" and stored.send_attempts == 2


async def test_portal_list_shows_the_customers_notifications(dunning: Dunning) -> None:
    notifier = dunning.notifier()
    mine, other = _request("cus_portal_a"), _request("cus_portal_b")
    await notifier.send(mine)
    await notifier.send(other)
    rows = notifications_for_customer(dunning.engine, "cus_portal_a")
    assert [r.key for r in rows] == [mine.key]
    assert rows[0].subject == "Payment failed for invoice inv_cus_portal_a"
    assert "Your card was declined. Please use another payment method." in rows[0].body
    assert "29.75 EUR" in rows[0].body
