"""One workflow per gateway dispute: ``dispute-<dispute id>``.

Started or signalled (signal-with-start) by the dispute webhooks
(``charge.dispute.created``, ``.funds_withdrawn``, ``.funds_reinstated``,
``.closed``, ``.updated``). Each run reads the dispute back from the gateway and
books what it moved (``disputes.sync``); an event that arrives while it runs makes it
read once more. It then tells the subscription whose payment is disputed
(``dispute_update`` to ``subscription-<id>``), which updates its risk and applies the
dispute policy. A subscription workflow that is not running is not told (its history
is gone; the count is in the database for the next one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

from workflows.subscription.disputes import DISPUTE_SIGNAL, DisputeNotice

with workflow.unsafe.imports_passed_through():
    from activities.disputes import DisputeActivities, DisputeSynced

DISPUTE_EVENT_SIGNAL = "dispute_event"

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["InvalidGatewayRequest"],
)


def workflow_id(dispute_id: str) -> str:
    return f"dispute-{dispute_id}"


@dataclass(frozen=True)
class DisputeEvent:
    event_id: str
    type: str


@workflow.defn(name="DisputeWorkflow")
class DisputeWorkflow:
    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._again = False

    @workflow.signal(name=DISPUTE_EVENT_SIGNAL)
    def dispute_event(self, event: DisputeEvent) -> None:
        if event.event_id not in self._seen:
            self._seen.add(event.event_id)
            self._again = True

    @workflow.run
    async def run(self, dispute_id: str) -> DisputeSynced:
        while True:
            self._again = False
            synced: DisputeSynced = await workflow.execute_activity_method(
                DisputeActivities.sync,
                dispute_id,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_RETRY,
            )
            if not self._again:
                break
        told = "not booked"
        if synced.booked and synced.subscription_id:
            notice = DisputeNotice(
                dispute_id,
                synced.status or "",
                synced.against_subscription,
                synced.opened,
                synced.policy,
            )
            try:
                await workflow.get_external_workflow_handle(
                    f"subscription-{synced.subscription_id}"
                ).signal(DISPUTE_SIGNAL, notice)
                told = f"subscription {synced.subscription_id} told"
            except FailureError:
                told = f"subscription {synced.subscription_id} not running"
        workflow.set_current_details(
            f"**Dispute** `{dispute_id}`: {synced.status}, {synced.posted} movements booked; "
            + told
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return synced
