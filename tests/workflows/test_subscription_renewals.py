"""Renewals on durable timers: a year of monthly periods, and a trial that converts."""

from __future__ import annotations

from datetime import timedelta

from billing.lifecycle import SubscriptionStatus, Trigger
from billing.periods import boundary, periods_from
from tests.workflows.harness import (
    FAILS_WHEN_CHARGED,
    Billing,
    eventually,
    first_run_of,
    previous_run,
    record_history,
)
from workflows import search_attributes as sa
from workflows.subscription import CHANGE_VERSION, PATCH_GENERATION_5, SubscriptionWorkflow

PRO_EUR = 2900
DE_VAT_ON_PRO = 551  # 19 % of 29.00 EUR, half-up


def balances(billing: Billing, customer_id: str) -> dict[str, int]:
    """Receivable of this customer, and the EUR revenue and tax payable of the whole book."""
    trial = billing.ledger.trial_balance()
    assert trial.balanced
    found = {"receivable": 0, "revenue": 0, "tax_payable": 0}
    for account in trial.accounts:
        if account.currency != "EUR":
            continue
        kind = account.code.split(":", 1)[0]
        if kind == "receivable" and account.code == f"receivable:{customer_id}:EUR":
            found["receivable"] = account.balance
        elif kind in ("revenue", "tax_payable"):
            found[kind] += account.balance
    return found


async def test_a_year_of_monthly_renewals_keeps_the_ledger_balanced(billing: Billing) -> None:
    january = await billing.first_after_now(1)
    start = january.replace(day=31, hour=9, minute=30)  # month-end anchor: Feb is clamped
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(minutes=1))
    first = await eventually(handle, lambda s: s.invoice_count == 1)
    customer_id = first.customer.customer_id  # type: ignore[union-attr]
    before = balances(billing, customer_id)  # the first invoice is already in the book
    expected_periods = periods_from(start, "month", 1, 12)
    assert (first.period_start, first.period_end) == (
        expected_periods[0].start,
        expected_periods[0].end,
    )
    first_run = handle.result_run_id

    for n, period in enumerate(expected_periods[1:], start=2):
        await billing.sleep_until(period.start + timedelta(minutes=1))
        state = await eventually(handle, lambda s, n=n: s.invoice_count == n)
        assert (state.period_start, state.period_end) == (period.start, period.end)
        assert state.status is SubscriptionStatus.ACTIVE
        # Ops see the new period (carried by continue-as-new, not upserted before it).
        shown = (await handle.describe()).typed_search_attributes
        assert (shown.get(sa.STATUS), shown.get(sa.PERIOD_END)) == ("active", period.end)
        assert shown.get(CHANGE_VERSION) == [PATCH_GENERATION_5], "still names the version"
        now = balances(billing, customer_id)
        assert now["receivable"] == 0, "every renewal was charged and paid"
        assert now["revenue"] - before["revenue"] == -PRO_EUR * (n - 1)
        assert now["tax_payable"] - before["tax_payable"] == -DE_VAT_ON_PRO * (n - 1)

    invoices = billing.store.list_for_customer(customer_id)
    assert len(invoices) == 12
    assert {str(i.status) for i in invoices} == {"paid"}
    assert sum(i.total for i in invoices) == 12 * (PRO_EUR + DE_VAT_ON_PRO)
    numbers = [i.number for i in invoices]
    assert len(set(numbers)) == 12 and all(numbers)
    assert [
        (i.period_start, i.period_end) for i in sorted(invoices, key=lambda i: i.period_start)
    ] == [(p.start, p.end) for p in expected_periods]
    final = await handle.query(SubscriptionWorkflow.state)
    assert final.runs == 12, "one run per period: continue-as-new at each boundary"
    causes = [t.cause for t in final.transitions]
    assert causes[0] is Trigger.FIRST_PAYMENT_SUCCEEDED or Trigger.RENEWAL_PAID in causes
    await record_history(
        billing.client.get_workflow_handle(handle.id, run_id=first_run), "subscription_renewal"
    )
    # Whole runs of this version: the first (generation-5 marker) and one continued as
    # new (its generation carried in state, no marker).
    await record_history(
        await first_run_of(billing.client, handle), "subscription_first_run_generation5"
    )
    await record_history(
        await previous_run(billing.client, handle), "subscription_renewal_generation5"
    )


async def test_trial_converts_to_active_at_the_first_paid_renewal(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start, trial=True)
    await billing.sleep_until(start + timedelta(minutes=1))
    trialing = await eventually(handle, lambda s: s.status is SubscriptionStatus.TRIALING)
    trial_end = start + timedelta(days=14)
    assert (trialing.period_start, trialing.period_end) == (start, trial_end)
    assert trialing.invoice_count == 0, "a trial is not billed"

    await billing.sleep_until(trial_end - timedelta(seconds=1))
    still = await handle.query(SubscriptionWorkflow.state)
    assert still.status is SubscriptionStatus.TRIALING

    await billing.sleep_until(trial_end + timedelta(minutes=1))
    active = await eventually(handle, lambda s: s.status is SubscriptionStatus.ACTIVE)
    assert [(t.from_status, t.to_status, t.cause, t.at) for t in active.transitions] == [
        (SubscriptionStatus.INCOMPLETE, SubscriptionStatus.TRIALING, Trigger.TRIAL_STARTED, start),
        (
            SubscriptionStatus.TRIALING,
            SubscriptionStatus.ACTIVE,
            Trigger.TRIAL_ENDED_PAID,
            trial_end,
        ),
    ]
    # The trial end anchors the cycle: the first paid period runs a month from it.
    assert (active.period_start, active.period_end) == (trial_end, boundary(trial_end, 1))
    (invoice,) = billing.store.list_for_customer(active.customer.customer_id)  # type: ignore[union-attr]
    assert (invoice.total, str(invoice.status)) == (PRO_EUR + DE_VAT_ON_PRO, "paid")


async def test_unpaid_first_invoice_expires_the_subscription(billing: Billing) -> None:
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start, card=FAILS_WHEN_CHARGED)
    await billing.sleep_until(start + timedelta(hours=1))
    incomplete = await eventually(handle, lambda s: len(s.unpaid_invoices) == 1)
    assert incomplete.status is SubscriptionStatus.INCOMPLETE
    (unpaid,) = incomplete.unpaid_invoices
    assert unpaid.decline_family is not None

    await billing.sleep_until(start + timedelta(hours=23, minutes=1))
    expired = await handle.result()
    assert expired.status is SubscriptionStatus.INCOMPLETE_EXPIRED
    assert expired.transitions[-1].cause is Trigger.FIRST_PAYMENT_FAILED_EXPIRED
    invoice = billing.store.get(unpaid.invoice_id)
    assert str(invoice.status) == "void" and invoice.amount_credited == invoice.total
