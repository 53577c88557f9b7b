"""The sweep's own checks, against localstripe, the simulator and the ledger: a charge
the ledger has no record of (no webhook needed), a ledger payment the gateway never
made, and one still unsettled past the tolerances' limit."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

from ledger.invoices import DraftLine
from ledger.reconciliation.exceptions import ExceptionStore
from tests.invoices.conftest import T0, issue
from tests.reconciliation.conftest import Recon
from workflows.recon_sweep import ReconSweepWorkflow, SweepInput


async def _sweep(recon: Recon, as_of: datetime) -> int:
    result = await recon.client.execute_workflow(
        ReconSweepWorkflow.run,
        SweepInput(as_of=as_of),
        id=f"sweep-{uuid.uuid4().hex[:8]}",
        task_queue=recon.task_queue,
    )
    return result.findings_opened


def _found(recon: Recon, refs: set[str]) -> set[tuple[str, str]]:
    return {
        (x.cls.value, x.gateway_ref or "")
        for x in ExceptionStore(recon.engine).list(status=None, limit=500)
        if x.gateway_ref in refs and x.payout_id is None
    }


async def test_the_sweep_finds_what_no_payout_shows(recon: Recon) -> None:
    recorded = await recon.charge(1_500)  # recorded at T0, never paid out
    stray = await recon.charge(2_200, record=False)  # at the gateway only
    ghost = f"pi_ghost_{uuid.uuid4().hex[:8]}"  # in the ledger only
    invoice = issue(recon.invoices, [DraftLine("a", "Plan", 900)])
    recon.invoices.mark_paid(invoice.id, payment_ref=ghost, amount=900, at=T0)
    recon.tick(int(time.time()))  # booked as pending balance transactions, no payout yet
    refs = {recorded.payment_intent_id, stray.payment_intent_id, ghost}

    assert await _sweep(recon, datetime.now(UTC) + timedelta(hours=2)) >= 1
    assert _found(recon, refs) == {("missing_in_ledger", stray.payment_intent_id)}

    # A week and a day after T0, the payments recorded then are aged.
    await _sweep(recon, T0 + timedelta(days=8))
    assert _found(recon, refs) == {
        ("missing_in_ledger", stray.payment_intent_id),
        ("unsettled_aged", recorded.payment_intent_id),
        ("missing_at_gateway", ghost),
    }
    # Sweeping again opens nothing new.
    assert await _sweep(recon, T0 + timedelta(days=8)) == 0
