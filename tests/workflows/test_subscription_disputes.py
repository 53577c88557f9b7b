"""A dispute of one of its payments reaches the subscription: its risk (the disputes
SCA decisions count) follows the database's count, and the dispute policy applies:
``flag`` keeps it active, ``cancel_at_period_end`` cancels it at its period end."""

from __future__ import annotations

from datetime import timedelta

from billing.disputes import DisputePolicy
from billing.lifecycle import SubscriptionStatus
from tests.workflows.harness import Billing, eventually, record_history
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.disputes import DisputeNotice


async def test_a_flagged_dispute_marks_the_subscription_at_risk_and_keeps_it(
    billing: Billing,
) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(start_at=start)
    await billing.sleep_until(start + timedelta(days=1))
    active = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert active.disputes == 0 and active.payment_history().disputes == 0

    await handle.signal(
        SubscriptionWorkflow.dispute_update, DisputeNotice("dp_one", "needs_response", 1, True)
    )
    flagged = await eventually(handle, lambda s: s.disputes == 1)
    assert flagged.payment_history().disputes == 1
    assert (flagged.status, flagged.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, False)
    assert "dp_one" in (flagged.last_event or "")

    # Won: it no longer counts against the subscription.
    await handle.signal(
        SubscriptionWorkflow.dispute_update, DisputeNotice("dp_one", "won", 0, False)
    )
    cleared = await eventually(handle, lambda s: s.disputes == 0)
    assert cleared.status is SubscriptionStatus.ACTIVE
    await record_history(handle, "subscription_dispute_flagged")


async def test_the_cancel_policy_cancels_at_the_period_end(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(start_at=start)
    await billing.sleep_until(start + timedelta(days=1))
    await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    notice = DisputeNotice("dp_two", "needs_response", 1, True, DisputePolicy.CANCEL_AT_PERIOD_END)
    await handle.signal(SubscriptionWorkflow.dispute_update, notice)
    cancelled = await eventually(handle, lambda s: s.cancel_at_period_end)
    assert (cancelled.status, cancelled.disputes) == (SubscriptionStatus.ACTIVE, 1)
    # The same notice again (a replayed event) changes nothing more.
    await handle.signal(SubscriptionWorkflow.dispute_update, notice)
    again = await eventually(handle, lambda s: "dp_two" in (s.last_event or ""))
    assert again.cancel_at_period_end and again.disputes == 1
