"""Refund workflows: one per refund ops ask for, one per charge the gateway refunded.

- ``RefundWorkflow`` (``refund-<reservation key>``): makes the refund ops reserved at
  the gateway and books it (``refunds.issue``). A gateway outage is retried with
  backoff for as long as it lasts; the reservation holds the amount meanwhile.
- ``ChargeRefundsWorkflow`` (``refunds-<charge id>``): started or signalled by the
  gateway's refund webhooks (``charge.refunded``, ``refund.created``,
  ``refund.updated``); books every refund of the charge the gateway holds that the
  ledger has not (``refunds.sync_charge``). An event that arrives while it runs makes
  it read the charge once more before it ends; one that arrives later starts a new run,
  which books nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.refunds import ChargeRefunds, RefundActivities, RefundOutcome

REFUND_EVENT_SIGNAL = "refund_event"

_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["InvalidGatewayRequest", "IdempotencyConflict"],
)


def refund_workflow_id(key: str) -> str:
    return f"refund-{key}"


def charge_workflow_id(charge_id: str) -> str:
    return f"refunds-{charge_id}"


@dataclass(frozen=True)
class RefundEvent:
    event_id: str
    type: str


@workflow.defn(name="RefundWorkflow")
class RefundWorkflow:
    @workflow.run
    async def run(self, key: str) -> RefundOutcome:
        outcome: RefundOutcome = await workflow.execute_activity_method(
            RefundActivities.issue,
            key,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=_RETRY,
        )
        workflow.set_current_details(
            f"**Refund** `{key}`: {outcome.status} {outcome.amount}"
            + (f" as `{outcome.refund_id}`" if outcome.refund_id else "")
        )
        return outcome


@workflow.defn(name="ChargeRefundsWorkflow")
class ChargeRefundsWorkflow:
    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._again = False

    @workflow.signal(name=REFUND_EVENT_SIGNAL)
    def refund_event(self, event: RefundEvent) -> None:
        if event.event_id not in self._seen:
            self._seen.add(event.event_id)
            self._again = True

    @workflow.run
    async def run(self, charge_id: str) -> ChargeRefunds:
        while True:
            self._again = False
            result: ChargeRefunds = await workflow.execute_activity_method(
                RefundActivities.sync_charge,
                charge_id,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=_RETRY,
            )
            if not self._again:
                break
        workflow.set_current_details(
            f"**Charge** `{charge_id}`: {result.recorded} refunds booked, "
            f"{result.known} known before, {result.exceptions} exceptions"
        )
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result
