"""The daily reconciliation sweep, started by the Temporal Schedule ``recon-sweep``
(overlap: skip; catch-up window: 3 days) and by ``dunwell recon backfill`` (one
``recon-sweep-<day>`` per day, so a rerun is a no-op in effect).

It asks ``recon.sweep_payouts`` which payouts arriving in the window before ``as_of``
need a run (never reconciled, or changed at the gateway since) and starts
``recon-payout-<id>`` for each; a run already going for a payout is left alone. Then
``recon.sweep_checks`` looks for what no payout shows: gateway charges the ledger has no
record of, and ledger payments still unsettled after the tolerances' limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

from workflows.reconcile_payout import ReconcileInput, ReconcilePayoutWorkflow, workflow_id

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import (
        ReconciliationActivities,
        SweepChecks,
        SweepRequest,
        SweepResult,
    )

WORKFLOW_TYPE = "ReconSweepWorkflow"
SCHEDULE_ID = "recon-sweep"
CATCHUP_WINDOW = timedelta(days=3)
_SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
# Behaviour added to running sweeps; each name is a workflow.patched() marker.
PATCH_SWEEP_CHECKS = "recon-sweep-checks"


@dataclass(frozen=True)
class SweepInput:
    as_of: datetime | None = None  # None: the scheduled time, else now
    window_days: int = 3


def sweep_id(day: str) -> str:
    return f"recon-sweep-{day}"


@workflow.defn(name=WORKFLOW_TYPE)
class ReconSweepWorkflow:
    @workflow.run
    async def run(self, request: SweepInput) -> SweepResult:
        as_of = (
            request.as_of
            or workflow.info().typed_search_attributes.get(_SCHEDULED_AT)
            or workflow.now()
        )
        found: SweepResult = await workflow.execute_activity_method(
            ReconciliationActivities.sweep_payouts,
            SweepRequest(as_of, request.window_days),
            start_to_close_timeout=timedelta(minutes=10),
        )
        started: list[str] = []
        for payout_id in found.payouts_to_run:
            try:
                await workflow.start_child_workflow(
                    ReconcilePayoutWorkflow.run,
                    ReconcileInput(payout_id, "sweep"),
                    id=workflow_id(payout_id),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                )
                started.append(payout_id)
            except WorkflowAlreadyStartedError:
                pass  # a run is going; it reads the payout as the gateway has it now
        opened = 0
        if workflow.patched(PATCH_SWEEP_CHECKS):
            checks: SweepChecks = await workflow.execute_activity_method(
                ReconciliationActivities.sweep_checks,
                SweepRequest(as_of, request.window_days),
                start_to_close_timeout=timedelta(minutes=30),
            )
            opened = checks.opened
        workflow.set_current_details(
            f"**Sweep** as of {as_of.isoformat()}: started {len(started)}, "
            f"skipped {len(found.skipped)} already reconciled, {opened} exceptions opened"
        )
        return SweepResult(started, found.skipped, opened)
