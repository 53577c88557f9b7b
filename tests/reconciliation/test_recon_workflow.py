"""The payout reconciliation run end to end: localstripe's charges, settled by the
simulator, read through the Stripe settlement adapter by ``recon-payout-<id>`` on a
Temporal server, against the ledger on PostgreSQL."""

from __future__ import annotations

import os
import time

from sqlalchemy import func, select
from temporalio.client import WorkflowHistory
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.worker import Replayer

from activities.reconciliation import RunSummary
from dunwell.converter import data_converter
from ledger.models import entries_table
from ledger.reconciliation.exceptions import ExceptionStore
from ledger.reconciliation.tables import settlement_lines
from tests.reconciliation.conftest import HISTORIES, RECORD_ENV, Recon
from tests.support.settlement_sim import call
from workflows import WORKFLOWS
from workflows.reconcile_payout import (
    PAYOUT_EVENT_SIGNAL,
    PayoutEvent,
    ReconcileInput,
    ReconcilePayoutWorkflow,
    workflow_id,
)

DAY = 86_400


async def reconcile(recon: Recon, payout_id: str, event: str | None = None) -> RunSummary:
    handle = await recon.client.start_workflow(
        ReconcilePayoutWorkflow.run,
        ReconcileInput(payout_id, "webhook"),
        id=workflow_id(payout_id),
        task_queue=recon.task_queue,
        start_signal=PAYOUT_EVENT_SIGNAL,
        start_signal_args=[PayoutEvent(event or f"evt_{payout_id}_paid", "payout.paid")],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    result: RunSummary = await handle.result()
    return result


def _entries(recon: Recon) -> int:
    with recon.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entries_table)).scalar_one())


async def test_happy_payout_matches_and_clearing_nets_to_zero(recon: Recon) -> None:
    clearing = recon.balance("gateway_clearing:EUR")
    dollars = recon.balance("gateway_clearing:USD")
    for amount in (2_000, 4_999, 12_345):
        await recon.charge(amount)
    await recon.charge(5_000, "USD")  # converted by the gateway into EUR
    (payout_id,) = recon.tick(int(time.time()) + DAY)["payouts"]

    summary = await reconcile(recon, payout_id)
    assert (summary.status, summary.payout_status, summary.exceptions) == ("reconciled", "paid", 0)
    assert (summary.lines, summary.matched) == (4, 4)
    # Payments in, fees and the payout out: clearing is back where it was in each currency.
    assert recon.balance("gateway_clearing:EUR") == clearing
    assert recon.balance("gateway_clearing:USD") == dollars
    report = call_report(recon, payout_id)
    assert report["gross"] == 2_000 + 4_999 + 12_345 + 4_600
    assert report["net"] == report["payout_amount"] == report["gross"] - report["fees"]

    if os.environ.get(RECORD_ENV):
        handle = recon.client.get_workflow_handle(workflow_id(payout_id))
        history = await handle.fetch_history()
        (HISTORIES / "recon_payout_happy.json").write_text(history.to_json())


def call_report(recon: Recon, payout_id: str) -> dict[str, object]:
    from ledger.reconciliation import runs
    from ledger.unit_of_work import read

    row = read(recon.engine, lambda c: runs.run_row(c, payout_id))
    assert row is not None
    return dict(row["report"])


async def test_paid_then_failed_reverses_once_and_opens_one_exception(recon: Recon) -> None:
    await recon.charge(3_000)
    (payout_id,) = recon.tick(int(time.time()) + DAY)["payouts"]
    await reconcile(recon, payout_id)
    cash = recon.balance("cash:EUR")

    call(recon.sim, "POST", f"/_sim/payouts/{payout_id}/fail", {"failure_code": "account_closed"})
    failed = await reconcile(recon, payout_id, f"evt_{payout_id}_failed")
    assert (failed.payout_status, failed.status) == ("failed", "exceptions")
    assert failed.exceptions_by_class == {"payout_failed": 1}
    payout_amount = 3_000 - (45 + 25)
    assert recon.balance("cash:EUR") == cash - payout_amount

    # Running it again (a replayed webhook, the sweep, ops) changes nothing.
    entries = _entries(recon)
    again = await reconcile(recon, payout_id, f"evt_{payout_id}_failed_again")
    assert again.exceptions_by_class == {"payout_failed": 1}
    assert _entries(recon) == entries
    assert recon.balance("cash:EUR") == cash - payout_amount
    (exc,) = ExceptionStore(recon.engine).list(payout_id=payout_id)
    assert exc.cls.value == "payout_failed" and exc.evidence["failure_code"] == "account_closed"


async def test_a_payout_of_more_than_a_page_is_read_whole(recon: Recon) -> None:
    for i in range(130):
        await recon.charge(1_000 + i)
    (payout_id,) = recon.tick(int(time.time()) + DAY)["payouts"]
    handle = await recon.client.start_workflow(
        ReconcilePayoutWorkflow.run,
        ReconcileInput(payout_id, "ops", max_pages_per_activity=1),
        id=workflow_id(payout_id),
        task_queue=recon.task_queue,
    )
    summary = await handle.result()
    assert (summary.lines, summary.matched, summary.exceptions) == (130, 130, 0)
    with recon.engine.connect() as conn:
        stored = conn.execute(
            select(func.count()).where(settlement_lines.c.payout_id == payout_id)
        ).scalar_one()
    assert stored == 131  # the charges and the payout's own transaction
    history = await handle.fetch_history()
    pages = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    assert len(pages) == 1 + 2 + 1  # begin, two page activities, finish


async def test_each_mismatch_found_in_a_real_payout_is_an_exception(recon: Recon) -> None:
    await recon.charge(2_000)
    stray = await recon.charge(7_000, record=False)  # the gateway has it, the ledger not
    (payout_id,) = recon.tick(int(time.time()) + DAY)["payouts"]
    summary = await reconcile(recon, payout_id)
    assert summary.exceptions_by_class == {"missing_in_ledger": 1}
    (exc,) = ExceptionStore(recon.engine).list(payout_id=payout_id)
    assert exc.evidence["ledger_ref"] == stray.payment_intent_id
    assert summary.status == "exceptions"


async def test_history_replays() -> None:
    path = HISTORIES / "recon_payout_happy.json"
    history = WorkflowHistory.from_json("recon-payout-happy", path.read_text())
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
