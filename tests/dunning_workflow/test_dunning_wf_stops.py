"""Declines that end dunning without a payment, and the policy's end actions."""

from __future__ import annotations

from datetime import timedelta

import pytest

from billing.declines import CUSTOMER_MESSAGES, CustomerMessage
from billing.dunning import EndAction, InvoiceEndAction, WaitForCustomer
from tests.dunning_workflow.harness import MASTERCARD, Dunning, decline_of, record_history


@pytest.mark.parametrize("recording", ["decline_lost_card", "decline_stolen_card"])
async def test_lost_or_stolen_card_is_never_retried_and_shown_as_generic(
    dunning: Dunning, recording: str
) -> None:
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of(recording))
    result = await handle.result()

    assert result.outcome == "stopped" and result.reason == "hard_decline"
    assert result.attempts == 1
    assert dunning.scripted is not None and dunning.scripted.charge_count() == 0
    # standard@v2: cancel, leave the invoice open, access until the grace period ends.
    assert result.end_action is EndAction.CANCEL
    assert result.invoice_end_action is InvoiceEndAction.LEAVE_OPEN
    failed_at = (await dunning.view(handle)).state.attempts[0].at
    assert result.revoke_access_at == failed_at + timedelta(hours=168)
    assert dunning.store.get(invoice.id).status == "open"

    mails = dunning.mails()
    assert [m.key.split(":")[2] for m in mails] == ["failure_notice"]
    body = mails[0].body
    assert CUSTOMER_MESSAGES[CustomerMessage.GENERIC_DECLINE] in body
    assert "https://billing.example.test/portal" in body
    for secret in ("lost", "stolen", "fraud", "pickup"):
        assert secret not in body.lower() and secret not in mails[0].subject.lower()


async def test_mastercard_mac_03_stops_at_once(dunning: Dunning) -> None:
    invoice = dunning.invoice()
    handle = await dunning.start(
        invoice,
        first_decline=decline_of("decline_mastercard_mac_03"),
        card=MASTERCARD,
        payment_method_id="pm_1RecMas4444",
    )
    result = await handle.result()
    assert result.outcome == "stopped" and result.reason == "hard_decline"
    assert dunning.scripted is not None and dunning.scripted.charge_count() == 0


async def test_authentication_required_asks_the_customer_then_ends_per_policy(
    dunning: Dunning,
) -> None:
    invoice = dunning.invoice()
    handle = await dunning.start(
        invoice,
        first_decline=decline_of("decline_authentication_required"),
        policy=("self_serve_short", 1),
    )
    view = await dunning.eventually(handle, lambda v: isinstance(v.decision, WaitForCustomer))
    assert isinstance(view.decision, WaitForCustomer)
    deadline = view.decision.deadline
    assert view.decision.reason == "authentication_required"

    result = await handle.result()

    assert dunning.scripted is not None and dunning.scripted.charge_count() == 0
    assert result.reason == "customer_did_not_act"
    # self_serve_short@v1: mark unpaid, write the invoice off, revoke at the stop.
    assert result.end_action is EndAction.MARK_UNPAID
    assert result.invoice_end_action is InvoiceEndAction.MARK_UNCOLLECTIBLE
    assert result.revoke_access_at is not None
    assert deadline <= result.revoke_access_at < deadline + timedelta(minutes=1)
    assert dunning.store.get(invoice.id).status == "uncollectible"

    mails = dunning.mails()
    assert [m.key.split(":")[2] for m in mails] == ["action_required", "final_notice"]
    assert CUSTOMER_MESSAGES[CustomerMessage.CONFIRM_PAYMENT] in mails[0].body
    assert "https://billing.example.test/portal" in mails[0].body
    assert deadline.strftime("%Y-%m-%d %H:%M UTC") in mails[1].body
    await record_history(handle, "dunning_authentication_required")


async def test_expired_card_waits_for_the_customer_and_leaves_past_due(dunning: Dunning) -> None:
    invoice = dunning.invoice()
    handle = await dunning.start(
        invoice, first_decline=decline_of("decline_expired_card"), policy=("enterprise", 1)
    )
    result = await handle.result()
    assert dunning.scripted is not None and dunning.scripted.charge_count() == 0
    assert result.reason == "customer_did_not_act"
    assert result.end_action is EndAction.LEAVE_PAST_DUE
    assert result.invoice_end_action is InvoiceEndAction.LEAVE_OPEN
    assert dunning.store.get(invoice.id).status == "open"
    mails = dunning.mails()
    assert mails[0].key.endswith(":action_required:1")
    assert CUSTOMER_MESSAGES[CustomerMessage.UPDATE_CARD] in mails[0].body


async def test_retries_exhausted_ends_with_cancel(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    for _ in range(8):
        scripted.decline("decline_do_not_honor")
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_do_not_honor"))
    result = await handle.result()
    assert result.reason == "retries_exhausted"
    assert scripted.charge_count() == 8 and scripted.unscripted == 0
    assert result.end_action is EndAction.CANCEL
    kinds = [m.key.split(":")[2] for m in dunning.mails()]
    assert kinds.count("final_notice") == 1
    assert kinds.count("failure_notice") == 9
    assert len(kinds) == len(set(m.key for m in dunning.mails()))
