"""standard@v3 end to end on the time-skipping server: a hard decline waits for a new
card, and an issuer outage is weathered on its own budget, in the customer's daytime."""

from __future__ import annotations

from datetime import timedelta

from billing.dunning import CardRef, RetryAt, WaitForCustomer, load_policy
from billing.dunning.network_rules import max_in_any_window
from billing.dunning.state import Trigger
from billing.dunning.timing import in_daytime
from tests.dunning_workflow.harness import MASTERCARD, Dunning, decline_of, record_history
from workflows.dunning import DunningWorkflow, PaymentMethodUpdate

V3 = ("standard", 3)
NEW_CARD = PaymentMethodUpdate("pm_new_card", CardRef("fp_new_card", "visa"))


async def test_a_hard_decline_then_a_new_card_on_day_3_recovers_the_invoice(
    dunning: Dunning,
) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.succeed()  # the new card's one immediate retry
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_lost_card"), policy=V3)
    waiting = await dunning.eventually(handle, lambda v: isinstance(v.decision, WaitForCustomer))
    assert isinstance(waiting.decision, WaitForCustomer)
    assert waiting.decision.reason == "hard_decline"
    assert waiting.state.blocked_cards == (waiting.state.attempts[0].card.fingerprint,)
    failed_at = waiting.state.attempts[0].at

    await dunning.sleep_until(failed_at + timedelta(days=3))
    assert scripted.charge_count() == 0  # the lost card is never charged
    view = await handle.execute_update(DunningWorkflow.payment_method_updated, NEW_CARD)
    assert not view.state.finished

    result = await handle.result()
    assert result.outcome == "recovered" and result.attempts == 2
    assert [c.form["payment_method"] for c in scripted.charges] == ["pm_new_card"]
    assert scripted.unscripted == 0
    assert dunning.store.get(invoice.id).status == "paid"
    final = await dunning.view(handle)
    assert final.state.attempts[1].trigger is Trigger.PAYMENT_METHOD_UPDATED
    await record_history(handle, "dunning_v3_hard_decline_new_card")


async def test_a_12_hour_issuer_outage_leaves_the_run_alive_and_it_recovers(
    dunning: Dunning,
) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    policy = load_policy(*V3)
    invoice = dunning.invoice()
    handle = await dunning.start(
        invoice,
        first_decline=decline_of("decline_processing_error"),
        policy=V3,
        card=MASTERCARD,
        payment_method_id="pm_1RecMas4444",
    )
    view = await dunning.eventually(handle, lambda v: isinstance(v.decision, RetryAt))
    outage_end = view.state.attempts[0].at + timedelta(hours=12)
    seen = 1
    while True:
        assert isinstance(view.decision, RetryAt), view.decision
        assert view.decision.reason == "issuer_outage"
        assert in_daytime(policy, view.decision.when, 60)
        recovering = view.decision.when >= outage_end
        if recovering:
            scripted.succeed()
        else:
            scripted.decline("decline_processing_error")
        await dunning.sleep_until(view.decision.when)
        seen += 1
        if recovering:
            break
        view = await dunning.eventually(
            handle,
            lambda v, n=seen: len(v.state.attempts) == n and isinstance(v.decision, RetryAt),
        )
        assert view.state.scheduled_retries == 0  # the outage spends its own budget

    result = await handle.result()
    assert result.outcome == "recovered"
    final = await dunning.view(handle)
    times = [a.at for a in final.state.attempts]
    assert max_in_any_window(times, timedelta(hours=24)) <= 5
    assert all(a.trigger is Trigger.OUTAGE for a in final.state.attempts[1:])
    assert scripted.unscripted == 0
