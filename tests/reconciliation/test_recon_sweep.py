"""The daily sweep and backfills: a payout already reconciled (by its webhooks) is not
run again; a 3-day backfill reconciles each day's payout once, and again changes
nothing; the schedule skips overlaps and catches up 3 days."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from dunwell.recon_schedule import backfill, sweep_schedule
from ledger.models import entries_table
from ledger.reconciliation import runs
from ledger.unit_of_work import read
from tests.reconciliation.conftest import Recon
from tests.reconciliation.test_recon_workflow import reconcile
from workflows.recon_sweep import ReconSweepWorkflow, SweepInput
from workflows.reconcile_payout import ReconcilePayoutWorkflow, workflow_id

DAY = 86_400


def _entries(recon: Recon) -> int:
    with recon.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entries_table)).scalar_one())


def _day(epoch: int) -> date:
    return datetime.fromtimestamp(epoch, UTC).date()


async def test_webhooks_then_the_sweep_make_one_run(recon: Recon) -> None:
    await recon.charge(2_500)
    now = int(time.time()) + DAY
    (payout_id,) = recon.tick(now)["payouts"]
    await reconcile(recon, payout_id)
    first = await recon.client.get_workflow_handle(workflow_id(payout_id)).describe()
    entries = _entries(recon)

    swept = await recon.client.execute_workflow(
        ReconSweepWorkflow.run,
        SweepInput(as_of=datetime.fromtimestamp(now + 1, UTC)),
        id=f"sweep-{payout_id}",
        task_queue=recon.task_queue,
    )
    assert (swept.payouts_to_run, swept.skipped) == ([], [payout_id])
    after = await recon.client.get_workflow_handle(workflow_id(payout_id)).describe()
    assert after.run_id == first.run_id
    assert _entries(recon) == entries


async def test_a_three_day_backfill_is_idempotent(recon: Recon) -> None:
    start = int(time.time())
    payouts = []
    for day in (1, 2, 3):
        await recon.charge(1_000 * day)
        (payout_id,) = recon.tick(start + day * DAY)["payouts"]
        payouts.append(payout_id)
    first, last = _day(start + DAY), _day(start + 3 * DAY)

    swept = await backfill(recon.client, recon.task_queue, first, last)
    assert len(swept) == 3
    for payout_id in payouts:
        handle = recon.client.get_workflow_handle_for(
            ReconcilePayoutWorkflow.run, workflow_id(payout_id)
        )
        summary = await handle.result()
        assert (summary.status, summary.matched) == ("reconciled", 1)
    entries = _entries(recon)
    run_ids = [
        (await recon.client.get_workflow_handle(workflow_id(p)).describe()).run_id for p in payouts
    ]

    await backfill(recon.client, recon.task_queue, first, last)
    assert _entries(recon) == entries
    assert [
        (await recon.client.get_workflow_handle(workflow_id(p)).describe()).run_id for p in payouts
    ] == run_ids
    rows = read(recon.engine, lambda c: [runs.run_row(c, p) for p in payouts])
    assert [row["status"] for row in rows if row] == ["reconciled"] * 3


def test_the_schedule_skips_overlaps_and_catches_up_three_days() -> None:
    schedule = sweep_schedule("dunwell")
    assert schedule.policy.overlap.name == "SKIP"
    assert schedule.policy.catchup_window >= timedelta(days=3)
    assert [c.hour[0].start for c in schedule.spec.calendars] == [2]


async def test_a_backfill_range_must_not_end_before_it_starts(recon: Recon) -> None:
    try:
        await backfill(recon.client, recon.task_queue, date(2030, 1, 3), date(2030, 1, 1))
    except ValueError as err:
        assert "before it starts" in str(err)
    else:
        raise AssertionError("a reversed range was accepted")
