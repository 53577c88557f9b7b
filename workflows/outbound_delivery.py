"""One delivery workflow per endpoint (``outbound-<endpoint id>``): signs and sends the
endpoint's events, ordered per subscription, retrying for days.

    loop:  a round (``outbound.deliver_due`` at workflow.now())
           -> delivered something: the next round at once (later events of the same
              subscriptions are due now)
           -> else wait for the earliest due retry, the next poll, or a ``wake`` signal
              (a round that found nothing has already long-polled for a while)
           -> the endpoint is failing or disabled: raise the ops alert (failing) and
              wait for ``wake`` (ops enabled it); its events keep accumulating
           -> continue-as-new every ``ROUNDS_PER_RUN`` rounds

Retries follow the deliveries' own schedule in the database (``billing.outbound``:
backoff with jitter, given up after three days), which the round reads with the
workflow's clock, so days of retries take no real time in a time-skipping test. The
API starts the workflow (signal-with-start) when an endpoint is registered, enabled or
an event is replayed; the worker starts one for each enabled endpoint when it starts.

A wait never starts a timer the same task would cancel: when a ``wake`` came while a
round ran, the next round starts without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from workflows.search_attributes import OUTBOUND_ALERT

with workflow.unsafe.imports_passed_through():
    from activities.outbound_delivery import (
        DeliverRequest,
        DeliverResult,
        OutboundDeliveryActivities,
    )

WAKE_SIGNAL = "wake"
# Between rounds that found nothing (each has long-polled the outbox first).
IDLE_POLL = timedelta(seconds=1)
# While a delivery waits out a backoff, the endpoint is looked at no more often than this
# (or at the retry, if sooner): a receiver that fails one event likely fails the next.
FAILING_POLL = timedelta(minutes=15)
ROUNDS_PER_RUN = 500
ROUND_TIMEOUT = timedelta(minutes=5)
# The round heartbeats while it long-polls; a worker that died is noticed this soon.
ROUND_HEARTBEAT = timedelta(seconds=30)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


def delivery_workflow_id(endpoint_id: str) -> str:
    return f"outbound-{endpoint_id}"


@dataclass(frozen=True)
class DeliveryInput:
    endpoint_id: str
    delivered: int = 0  # carried through continue-as-new
    failed: int = 0
    idle_poll_seconds: float = IDLE_POLL.total_seconds()


@dataclass(frozen=True)
class DeliveryProgress:
    endpoint_id: str
    status: str
    delivered: int
    failed: int
    rounds: int


@workflow.defn(name="OutboundDeliveryWorkflow")
class OutboundDeliveryWorkflow:
    @workflow.init
    def __init__(self, start: DeliveryInput) -> None:
        self._endpoint_id = start.endpoint_id
        self._idle_poll = timedelta(seconds=start.idle_poll_seconds)
        self._delivered = start.delivered
        self._failed = start.failed
        self._status = "enabled"
        self._rounds = 0
        self._woken = False
        self._alerted = False

    @workflow.run
    async def run(self, start: DeliveryInput) -> None:
        while True:
            self._woken = False
            result = await self._round()
            if result.endpoint_status == "missing":
                return  # the endpoint does not exist: nothing will ever be due
            self._alert(result.endpoint_status == "failing")
            if result.endpoint_status != "enabled":
                await workflow.wait_condition(lambda: self._woken)
                continue
            if self._rounds >= ROUNDS_PER_RUN or workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    DeliveryInput(
                        self._endpoint_id,
                        self._delivered,
                        self._failed,
                        self._idle_poll.total_seconds(),
                    )
                )
            if result.delivered or self._woken:
                continue
            wait = FAILING_POLL if result.failed or result.backing_off else self._idle_poll
            if result.next_due_at is not None:
                wait = min(wait, result.next_due_at - workflow.now())
            if wait <= timedelta(0):
                continue
            try:
                await workflow.wait_condition(
                    lambda: self._woken, timeout=wait, timeout_summary="next delivery"
                )
            except TimeoutError:
                pass

    async def _round(self) -> DeliverResult:
        result = await workflow.execute_activity_method(
            OutboundDeliveryActivities.deliver_due,
            DeliverRequest(self._endpoint_id, workflow.now()),
            start_to_close_timeout=ROUND_TIMEOUT,
            heartbeat_timeout=ROUND_HEARTBEAT,
            retry_policy=RETRY,
        )
        self._rounds += 1
        self._delivered += result.delivered
        self._failed += result.failed
        self._status = result.endpoint_status
        return result

    def _alert(self, failing: bool) -> None:
        """``DunwellOutboundAlert`` is ``failing`` while the endpoint is given up on."""
        if failing == self._alerted:
            return
        self._alerted = failing
        workflow.upsert_search_attributes(
            [OUTBOUND_ALERT.value_set("failing") if failing else OUTBOUND_ALERT.value_unset()]
        )

    @workflow.signal(name=WAKE_SIGNAL)
    def wake(self) -> None:
        """Something changed: an event was replayed, or ops enabled the endpoint."""
        self._woken = True

    @workflow.query
    def progress(self) -> DeliveryProgress:
        return DeliveryProgress(
            self._endpoint_id, self._status, self._delivered, self._failed, self._rounds
        )
