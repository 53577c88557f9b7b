"""The daily nexus watch on Temporal: a billing run that crosses a threshold in a state
where the seller is not registered raises one alert per threshold level, however often
the watch runs; its history replays. The schedule is daily, skips overlaps and catches
up three days."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.nexus import NexusActivities
from dunwell.converter import data_converter
from dunwell.nexus_schedule import WATCH_HOUR_UTC, nexus_schedule
from ledger.invoices import DraftLine, InvoiceStore
from tax import Address
from tax.nexus import parse_thresholds
from tests.invoices.conftest import issue
from tests.workflows.harness import record_history
from workflows.nexus_watch import CATCHUP_WINDOW, SCHEDULE_ID, NexusWatchWorkflow

# Colorado at a made-up USD 1,000 for the year; the seller holds no Colorado registration.
THRESHOLDS = parse_thresholds(
    "jurisdiction,currency,sales_amount,transactions,combine,measurement_period,"
    "valid_from,valid_to,source_url,retrieved_on,note\n"
    "US-CO,USD,1000,,,calendar_year,2020-01-01,,https://example.test/co,2026-12-07,\n"
)


async def test_a_crossed_threshold_raises_each_alert_once(
    temporal_time_env: WorkflowEnvironment, billing_engine: Engine
) -> None:
    env = temporal_time_env
    store = InvoiceStore(billing_engine)
    now = await env.get_current_time()

    def billing_run(dollars: int) -> None:
        issue(store, [DraftLine("plan", "Plan", dollars * 100)], address=Address("US", "CO"),
              currency="USD", at=now - timedelta(minutes=5))  # fmt: skip

    task_queue = f"nexus-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[NexusWatchWorkflow],
        activities=NexusActivities(billing_engine, THRESHOLDS).all(),
    ):

        async def watch(n: int) -> list[str]:
            # Without skipping: the server would skip years ahead waiting for the result,
            # out of the measurement year of the billing run.
            with env.auto_time_skipping_disabled():
                result = await env.client.execute_workflow(
                    NexusWatchWorkflow.run, id=f"{task_queue}-{n}", task_queue=task_queue
                )
            return result.alerts

        assert await watch(0) == []
        billing_run(450)
        billing_run(400)  # 850 of 1,000
        assert await watch(1) == ["US-CO 80%"]
        assert await watch(2) == []
        billing_run(300)  # 1,150
        assert await watch(3) == ["US-CO 100%"]
        assert await watch(4) == []

    handle = env.client.get_workflow_handle(f"{task_queue}-3")
    await record_history(handle, "nexus_watch")  # with DUNWELL_RECORD_HISTORIES=1
    history = await handle.fetch_history()
    await Replayer(workflows=[NexusWatchWorkflow], data_converter=data_converter).replay_workflow(
        history
    )


def test_the_schedule_is_daily_and_catches_up() -> None:
    schedule = nexus_schedule("q")
    (calendar,) = schedule.spec.calendars
    assert [r.start for r in calendar.hour] == [WATCH_HOUR_UTC]
    assert schedule.policy.catchup_window == CATCHUP_WINDOW == timedelta(days=3)
    assert SCHEDULE_ID == "tax-nexus-watch"
