"""Two subscriptions on one card, end to end: every dunning charge passes the card's
attempt ledger, so caps and blocks hold across both invoices' runs (standard@v3)."""

from __future__ import annotations

import uuid
from datetime import timedelta

from billing.dunning import CardRef, RetryAt, WaitForCustomer
from billing.dunning.network_rules import max_in_any_window
from stores import card_attempts
from stores.card_attempts import CardAttemptLedger, CardCharge
from tests.dunning_workflow.harness import Dunning, decline_of, record_history

V3 = ("standard", 3)


def _card() -> CardRef:
    return CardRef(f"fp_shared_{uuid.uuid4().hex[:8]}", "visa")


async def test_the_other_invoices_attempts_count_against_the_visa_cap(dunning: Dunning) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.succeed()
    card, customer = _card(), f"cus_two_{uuid.uuid4().hex[:8]}"
    now = await dunning.env.get_current_time()
    cards = CardAttemptLedger(dunning.engine)
    old = now - timedelta(days=28)  # the other subscription's renewal and retries
    for n in range(15):
        charge = CardCharge(
            f"in_other:{n}", customer, "pm_1RecVis0002", "visa", "in_other", "sub_other",
            "dunning", old + timedelta(minutes=n), card.fingerprint,
        )  # fmt: skip
        assert cards.reserve(charge) is None
        cards.settle(charge, "declined", decline_of("decline_do_not_honor"))
    invoice = dunning.invoice()
    handle = await dunning.start(
        invoice,
        first_decline=decline_of("decline_do_not_honor"),
        policy=V3,
        card=card,
        gateway_customer_id=customer,
    )
    first = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))
    assert isinstance(first.decision, RetryAt)
    await dunning.sleep_until(first.decision.when)
    moved = await dunning.eventually(
        handle, lambda v: isinstance(v.decision, RetryAt) and v.decision.reason == "network_cap"
    )
    assert isinstance(moved.decision, RetryAt)
    assert moved.decision.when >= old + timedelta(days=30)  # the cap's first free instant
    assert scripted.charge_count() == 0 and len(moved.state.attempts) == 1
    assert moved.state.scheduled_retries == 0  # the refused retry was given back

    result = await handle.result()
    assert result.outcome == "recovered" and scripted.charge_count() == 1
    probe = CardCharge("probe", customer, "pm_x", "visa", "x", None, "dunning", now + timedelta(days=20), card.fingerprint)  # fmt: skip
    with dunning.engine.connect() as conn:
        times = [a.at for a in card_attempts.history(conn, probe)]
    assert max_in_any_window(times, timedelta(days=30)) <= 15
    await record_history(handle, "dunning_v3_card_ledger_refused")


async def test_a_hard_decline_on_one_invoice_blocks_the_card_for_the_other(
    dunning: Dunning,
) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.decline("decline_lost_card")  # invoice A's first retry
    card, customer = _card(), f"cus_two_{uuid.uuid4().hex[:8]}"
    a = await dunning.start(
        dunning.invoice(),
        first_decline=decline_of("decline_do_not_honor"),
        policy=V3,
        card=card,
        gateway_customer_id=customer,
    )
    view = await dunning.eventually(a, lambda v: isinstance(v.decision, RetryAt))
    assert isinstance(view.decision, RetryAt)
    await dunning.sleep_until(view.decision.when)
    blocked = await dunning.eventually(a, lambda v: isinstance(v.decision, WaitForCustomer))
    assert blocked.state.blocked_cards == (card.fingerprint,)
    assert scripted.charge_count() == 1

    b = await dunning.start(
        dunning.invoice(),
        first_decline=decline_of("decline_do_not_honor"),
        policy=V3,
        card=card,
        gateway_customer_id=customer,
    )
    view = await dunning.eventually(b, lambda v: isinstance(v.decision, RetryAt))
    assert isinstance(view.decision, RetryAt)
    await dunning.sleep_until(view.decision.when)
    waiting = await dunning.eventually(b, lambda v: isinstance(v.decision, WaitForCustomer))
    assert isinstance(waiting.decision, WaitForCustomer)
    assert waiting.decision.reason == "hard_decline"
    assert waiting.state.blocked_cards == (card.fingerprint,)
    assert scripted.charge_count() == 1  # invoice B never charged the lost card
    assert scripted.unscripted == 0
