"""The daily economic-nexus watch, started by the Temporal Schedule ``tax-nexus-watch``
(overlap: skip; catch-up window: 3 days). One activity reads the running totals from
the compliance ledger and records the alerts due; an alert fires once per threshold
and level however often this runs, so a catch-up or a manual run is harmless."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.nexus import NexusActivities, NexusWatchRequest, NexusWatchResult

WORKFLOW_TYPE = "NexusWatchWorkflow"
SCHEDULE_ID = "tax-nexus-watch"
CATCHUP_WINDOW = timedelta(days=3)
_SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@workflow.defn(name=WORKFLOW_TYPE)
class NexusWatchWorkflow:
    @workflow.run
    async def run(self) -> NexusWatchResult:
        at = workflow.info().typed_search_attributes.get(_SCHEDULED_AT) or workflow.now()
        result: NexusWatchResult = await workflow.execute_activity_method(
            NexusActivities.nexus_watch,
            NexusWatchRequest(at),
            start_to_close_timeout=timedelta(minutes=10),
        )
        workflow.set_current_details(
            f"**Nexus watch** at {at.isoformat()}: {result.watched} thresholds, "
            f"alerts raised: {', '.join(result.alerts) or 'none'}"
        )
        return result
