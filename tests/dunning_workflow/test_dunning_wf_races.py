"""Cancellation wins, and a new payment method buys exactly one immediate retry.

A gated scripted reply holds the charge's HTTP response until the test opens the gate,
so "in flight" is a fact, not a timing guess. Any charge the test did not script is
answered and counted (``unscripted``), so a charge after the cancel cannot go unseen.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

from billing.dunning import CardRef, EndAction, Phase, RetryAt, Trigger
from tests.dunning_workflow.harness import Dunning, decline_of, record_history
from workflows.dunning import DunningWorkflow, PaymentMethodUpdate

NEW_CARD = PaymentMethodUpdate("pm_new_card", CardRef("fp_new_card", "visa"))


async def _first_retry(dunning: Dunning, handle: object) -> RetryAt:
    view = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))  # type: ignore[arg-type]
    assert isinstance(view.decision, RetryAt)
    return view.decision


async def test_cancel_while_a_charge_is_in_flight(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    gate = threading.Event()
    scripted.decline("decline_insufficient_funds", gate=gate)
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    retry = await _first_retry(dunning, handle)
    await dunning.sleep_until(retry.when + timedelta(seconds=1))
    await asyncio.to_thread(scripted.wait_for_charges, 1)

    view = await handle.execute_update(DunningWorkflow.customer_cancelled)
    assert view.charge_in_flight and view.state.cancelled_at is not None
    gate.set()
    result = await handle.result()

    assert result.outcome == "stopped" and result.reason == "customer_cancelled"
    assert result.end_action is EndAction.CANCEL
    assert result.attempts == 2  # the in-flight outcome is recorded
    assert scripted.charge_count() == 1 and scripted.unscripted == 0
    # No request to pay after the cancel: no failure notice for the in-flight decline.
    assert not any(m.key.endswith(":failure_notice:2") for m in dunning.mails())
    await record_history(handle, "dunning_cancel_in_flight")


async def test_cancel_just_before_the_timer_fires(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    retry = await _first_retry(dunning, handle)
    await dunning.sleep_until(retry.when - timedelta(seconds=1))
    assert scripted.charge_count() == 0

    view = await handle.execute_update(DunningWorkflow.customer_cancelled)
    assert view.phase is Phase.PAUSED and not view.charge_in_flight
    result = await handle.result()

    assert result.reason == "customer_cancelled"
    assert scripted.charge_count() == 0


async def test_cancel_drops_the_retry_a_new_card_was_owed(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    gate = threading.Event()
    scripted.decline("decline_insufficient_funds", gate=gate)
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    retry = await _first_retry(dunning, handle)
    await dunning.sleep_until(retry.when + timedelta(seconds=1))
    await asyncio.to_thread(scripted.wait_for_charges, 1)

    # A new card while a charge is in flight is owed one retry after the outcome ...
    owed = await handle.execute_update(DunningWorkflow.payment_method_updated, NEW_CARD)
    assert owed.state.owed_immediate is Trigger.PAYMENT_METHOD_UPDATED
    # ... which the cancel takes back.
    await handle.execute_update(DunningWorkflow.customer_cancelled)
    gate.set()
    result = await handle.result()

    assert result.reason == "customer_cancelled"
    assert scripted.charge_count() == 1 and scripted.unscripted == 0


async def test_cancel_after_a_new_card_records_the_immediate_charge(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    gate = threading.Event()
    scripted.succeed(gate=gate)
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    await _first_retry(dunning, handle)

    started = await handle.execute_update(DunningWorkflow.payment_method_updated, NEW_CARD)
    assert started.charge_in_flight  # decided and started before the cancel arrived
    cancelled = await handle.execute_update(DunningWorkflow.customer_cancelled)
    assert cancelled.state.cancelled_at is not None
    gate.set()
    result = await handle.result()

    # The charge that was already in flight went through: recorded, invoice paid.
    assert result.outcome == "recovered"
    assert scripted.charge_count() == 1 and scripted.unscripted == 0
    assert scripted.charges[0].form["payment_method"] == "pm_new_card"
    assert dunning.store.get(invoice.id).status == "paid"


async def test_new_card_in_backoff_retries_once_and_the_schedule_continues(
    dunning: Dunning,
) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.decline("decline_insufficient_funds")  # the immediate retry
    scripted.succeed()  # the next scheduled retry
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    await _first_retry(dunning, handle)

    await handle.execute_update(DunningWorkflow.payment_method_updated, NEW_CARD)
    view = await dunning.eventually(
        handle, lambda v: len(v.state.attempts) == 2 and isinstance(v.decision, RetryAt)
    )
    assert scripted.charge_count() == 1
    assert view.state.immediate_retries == 1 and view.state.scheduled_retries == 0
    assert view.state.attempts[1].trigger is Trigger.PAYMENT_METHOD_UPDATED
    assert isinstance(view.decision, RetryAt) and view.decision.reason != "payment_method_updated"

    result = await handle.result()

    assert result.outcome == "recovered" and result.attempts == 3
    assert scripted.keys == [f"{invoice.id}:dunning:2", f"{invoice.id}:dunning:3"]
    assert [c.form["payment_method"] for c in scripted.charges] == ["pm_new_card"] * 2
    final = await dunning.view(handle)
    assert [a.trigger for a in final.state.attempts[1:]] == [
        Trigger.PAYMENT_METHOD_UPDATED,
        Trigger.SCHEDULED,
    ]
    await record_history(handle, "dunning_new_card")
