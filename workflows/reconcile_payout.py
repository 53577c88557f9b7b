"""One reconciliation run per payout: ``recon-payout-<payout id>``.

Started or signalled (signal-with-start) by the payout webhooks, started by the daily
sweep (``recon_sweep``) and by ops. The run reads the payout, pages through all of its
balance transactions in ``recon.pages`` activities (each handles up to 50 pages and
hands back only a cursor and counts, so history stays small however large the payout),
then judges the payout itself in ``recon.finish``, which posts its cash entry (or the
reversal of a failed one) and writes the report. A ``payout_event`` signal that arrives
while the run is going makes it judge the payout once more before it ends; one that
arrives later starts a new run, which writes nothing twice.

Visible in the Temporal UI by ``DunwellPayoutId`` and ``DunwellReconStatus``
(running, reconciled, exceptions, waiting: the payout is not paid yet), with the
counts in the current details.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.search_attributes import PAYOUT_ID, RECON_STATUS

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import (
        FinishRequest,
        PagesRequest,
        PayoutHead,
        ReconciliationActivities,
        RunSummary,
    )

WORKFLOW_TYPE = "ReconcilePayoutWorkflow"
PAYOUT_EVENT_SIGNAL = "payout_event"

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["InvalidGatewayRequest"],
)


def workflow_id(payout_id: str) -> str:
    return f"recon-payout-{payout_id}"


@dataclass(frozen=True)
class ReconcileInput:
    payout_id: str
    trigger: str = "webhook"  # webhook | sweep | ops | bench
    max_pages_per_activity: int = 50


@dataclass(frozen=True)
class PayoutEvent:
    event_id: str
    type: str  # payout.paid | payout.failed | ...


@workflow.defn(name=WORKFLOW_TYPE)
class ReconcilePayoutWorkflow:
    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._again = False

    @workflow.signal(name=PAYOUT_EVENT_SIGNAL)
    def payout_event(self, event: PayoutEvent) -> None:
        if event.event_id not in self._seen:
            self._seen.add(event.event_id)
            self._again = True

    @workflow.run
    async def run(self, request: ReconcileInput) -> RunSummary:
        workflow.upsert_search_attributes(
            [PAYOUT_ID.value_set(request.payout_id), RECON_STATUS.value_set("running")]
        )
        head: PayoutHead = await workflow.execute_activity_method(
            ReconciliationActivities.begin,
            request.payout_id,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
        )
        cursor: str | None = None
        lines = matched = 0
        while True:
            done = await workflow.execute_activity_method(
                ReconciliationActivities.pages,
                PagesRequest(
                    request.payout_id,
                    head.tolerances_version,
                    cursor,
                    request.max_pages_per_activity,
                    workflow_id(request.payout_id),
                ),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=5),
                retry_policy=_RETRY,
            )
            cursor, lines, matched = done.cursor, lines + done.lines, matched + done.matched
            self._details(head, f"reading: {lines} lines, {matched} matched")
            if done.done:
                break
        while True:
            self._again = False
            summary: RunSummary = await workflow.execute_activity_method(
                ReconciliationActivities.finish,
                FinishRequest(request.payout_id, workflow_id(request.payout_id)),
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_RETRY,
            )
            if not self._again:
                break
        workflow.upsert_search_attributes([RECON_STATUS.value_set(summary.status)])
        self._details(
            head,
            f"{summary.status} (payout {summary.payout_status}): {summary.lines} lines, "
            f"{summary.matched} matched, {summary.exceptions} exceptions"
            + "".join(f"\n- {cls}: {n}" for cls, n in sorted(summary.exceptions_by_class.items())),
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return summary

    @staticmethod
    def _details(head: PayoutHead, text: str) -> None:
        workflow.set_current_details(
            f"**Payout** `{head.payout_id}` {head.amount} {head.currency} — {text}"
        )
