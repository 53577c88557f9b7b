"""The daily economic-nexus watch's Temporal Schedule.

``ensure_nexus_schedule`` creates ``tax-nexus-watch`` once (the worker calls it at
start): every day at 03:00 UTC, overlap skip, catch-up window 3 days.
"""

from __future__ import annotations

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
)

from workflows.nexus_watch import CATCHUP_WINDOW, SCHEDULE_ID, NexusWatchWorkflow

WATCH_HOUR_UTC = 3


def nexus_schedule(task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            NexusWatchWorkflow.run, id=SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(WATCH_HOUR_UTC)])],
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
    )


async def ensure_nexus_schedule(client: Client, task_queue: str) -> bool:
    """Create the schedule unless it exists; True when it was created."""
    try:
        await client.create_schedule(SCHEDULE_ID, nexus_schedule(task_queue))
    except ScheduleAlreadyRunningError:
        return False
    return True
