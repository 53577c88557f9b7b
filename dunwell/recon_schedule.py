"""The daily reconciliation sweep's Temporal Schedule, and backfills by day.

``ensure_sweep_schedule`` creates the schedule ``recon-sweep`` once (the worker calls
it at start): every day at 02:00 UTC, overlap skip, catch-up window 3 days, so a sweep
missed while Temporal was down runs when it comes back. ``backfill`` starts one
``recon-sweep-<day>`` per day of a range, each covering the payouts arriving that day;
a day already swept skips what it reconciled, so a backfill can be run again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

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
from temporalio.common import WorkflowIDConflictPolicy

from workflows.recon_sweep import (
    CATCHUP_WINDOW,
    SCHEDULE_ID,
    ReconSweepWorkflow,
    SweepInput,
    sweep_id,
)

SWEEP_HOUR_UTC = 2


def sweep_schedule(task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconSweepWorkflow.run, SweepInput(), id=SCHEDULE_ID, task_queue=task_queue
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(SWEEP_HOUR_UTC)])],
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
    )


async def ensure_sweep_schedule(client: Client, task_queue: str) -> bool:
    """Create the schedule unless it exists; True when it was created."""
    try:
        await client.create_schedule(SCHEDULE_ID, sweep_schedule(task_queue))
    except ScheduleAlreadyRunningError:
        return False
    return True


async def backfill(client: Client, task_queue: str, start: date, end: date) -> list[str]:
    """Sweep each day of ``[start, end]``; returns the sweep ids, waiting for each."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    ids: list[str] = []
    day = start
    while day <= end:
        as_of = datetime.combine(day + timedelta(days=1), time(0), UTC)
        handle = await client.start_workflow(
            ReconSweepWorkflow.run,
            SweepInput(as_of=as_of, window_days=1),
            id=sweep_id(day.isoformat()),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        await handle.result()
        ids.append(handle.id)
        day += timedelta(days=1)
    return ids
