"""Mid-cycle plan changes through the ``change_plan`` update, to the exact second.

Expectations are computed by hand from the catalog (EUR: starter 9.00, pro 29.00,
business 99.00) and German VAT (19 %, per line, half-up). The change happens a few
milliseconds after the instant the test sleeps to; proration floors to whole seconds,
so the remaining time is the nominal one or up to a few seconds less, and the chosen
instants keep every amount far from a rounding tie.
"""

from __future__ import annotations

from datetime import timedelta

from billing.lifecycle import SubscriptionStatus
from billing.proration import ChangePolicy, ChangeTiming
from tests.workflows.harness import Billing, eventually, previous_run, record_history, utc
from workflows.subscription import SubscriptionWorkflow
from workflows.subscription.state import ChangePlanRequest

DAY = 86_400


def proration_lines(billing: Billing, invoice_id: str) -> dict[str, tuple[int, int]]:
    """kind -> (amount excluding tax, tax) of a proration invoice's lines."""
    invoice = billing.store.get(invoice_id)
    return {
        line.kind: (line.amount_excluding_tax, line.tax_amount)
        for line in invoice.lines  # type: ignore[union-attr]
    }


async def change(billing: Billing, handle, plan_id: str):
    return await handle.execute_update(
        SubscriptionWorkflow.change_plan, ChangePlanRequest(plan_id=plan_id)
    )


async def test_upgrades_in_a_31_day_and_a_28_day_month(billing: Billing) -> None:
    start = await billing.first_after_now(1, leap=False)
    year = start.year
    handle = await billing.subscribe(plan_id="starter-monthly", start_at=start)
    await billing.sleep_until(utc(year, 1, 17))
    await eventually(handle, lambda s: s.invoice_count == 1)

    # January has 31 days; 15 of them remain after Jan 17 00:00.
    january = await change(billing, handle, "pro-monthly")
    assert (january.outcome, january.plan_id) == ("applied", "pro-monthly")
    assert proration_lines(billing, january.invoice_id) == {
        "proration_credit": (-435, -83),  # 900 * 15/31 = 435.48; VAT 82.65
        "proration_charge": (1403, 267),  # 2900 * 15/31 = 1403.23; VAT 266.57
    }
    assert january.amount_charged == (1403 - 435) + (267 - 83)
    audit = billing.store.prorations(invoice_id=january.invoice_id)
    assert audit
    record = audit[0].record
    assert record["period_seconds"] == 31 * DAY
    assert 15 * DAY - 5 <= record["seconds_remaining"] <= 15 * DAY

    # February of a common year has 28 days; 14 remain after Feb 15 00:00.
    await billing.sleep_until(utc(year, 2, 15))
    renewed = await eventually(handle, lambda s: s.period_start == utc(year, 2, 1))
    assert renewed.plan_id == "pro-monthly"
    february = await change(billing, handle, "business-monthly")
    assert february.outcome == "applied"
    assert proration_lines(billing, february.invoice_id) == {
        "proration_credit": (-1450, -276),  # 2900 * 14/28; VAT 275.5 rounds half-up
        "proration_charge": (4950, 941),  # 9900 * 14/28; VAT 940.5 rounds half-up
    }
    state = await handle.query(SubscriptionWorkflow.state)
    assert state.plan_id == "business-monthly"
    assert [c.outcome for c in state.plan_changes] == ["applied", "applied"]


async def test_leap_february_upgrade_then_downgrade_at_period_end(billing: Billing) -> None:
    start = await billing.first_after_now(2, leap=True)
    year = start.year
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(utc(year, 2, 15))
    await eventually(handle, lambda s: s.invoice_count == 1)

    # A leap February has 29 days; 15 remain after Feb 15 00:00.
    upgrade = await change(billing, handle, "business-monthly")
    assert upgrade.outcome == "applied"
    assert proration_lines(billing, upgrade.invoice_id) == {
        "proration_credit": (-1500, -285),  # 2900 * 15/29 = 1500 exactly
        "proration_charge": (5121, 973),  # 9900 * 15/29 = 5120.69; VAT 972.99
    }

    # A downgrade waits for the period end: the rest of February stays on business.
    downgrade = await change(billing, handle, "pro-monthly")
    assert (downgrade.outcome, downgrade.plan_id, downgrade.pending_plan_id) == (
        "scheduled",
        "business-monthly",
        "pro-monthly",
    )
    assert downgrade.effective_at == utc(year, 3, 1)
    await billing.sleep_until(utc(year, 3, 1) - timedelta(seconds=1))
    before = await handle.query(SubscriptionWorkflow.state)
    assert (before.plan_id, before.invoice_count) == ("business-monthly", 2)

    await billing.sleep_until(utc(year, 3, 1, 0, 1))
    march = await eventually(handle, lambda s: s.invoice_count == 3)
    assert (march.plan_id, march.pending_plan_id) == ("pro-monthly", None)
    renewal = billing.store.get(march.invoices[-1].invoice_id)
    assert [(line.plan_id, line.amount) for line in renewal.lines] == [("pro-monthly", 2900)]
    assert renewal.total == 2900 + 551
    assert march.status is SubscriptionStatus.ACTIVE
    await record_history(handle, "subscription_plan_change")
    # The run with the upgrade, the scheduled downgrade and the renewal applying it.
    await record_history(
        await previous_run(billing.client, handle), "subscription_plan_change_generation5"
    )


async def test_immediate_downgrade_policy_credits_the_customer(billing: Billing) -> None:
    start = await billing.first_after_now(4)  # April: 30 days
    year = start.year
    policy = ChangePolicy(downgrade=ChangeTiming.IMMEDIATELY)
    handle = await billing.subscribe(
        plan_id="business-monthly", start_at=start, change_policy=policy
    )
    await billing.sleep_until(utc(year, 4, 16))
    await eventually(handle, lambda s: s.invoice_count == 1)

    downgrade = await change(billing, handle, "starter-monthly")
    assert (downgrade.outcome, downgrade.plan_id, downgrade.amount_charged) == (
        "applied",
        "starter-monthly",
        0,
    )
    assert proration_lines(billing, downgrade.invoice_id) == {
        "proration_credit": (-4950, -941),  # 9900 * 15/30; VAT -940.5, ties away from zero
        "proration_charge": (450, 86),  # 900 * 15/30; VAT 85.5
    }
    invoice = billing.store.get(downgrade.invoice_id)
    assert (invoice.total, str(invoice.status)) == (-4500 - 855, "paid")
