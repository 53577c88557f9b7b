"""Driving a bench phase: a closed loop with a fixed number of lanes, or an open loop at
a rate; each bounded in time, reporting what it did, cut off and never started."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench._stack import progress


@dataclass(frozen=True)
class Phase:
    """How a bounded phase went: its time, how many of its items were started (always a
    prefix of them), and those cut off in flight when it timed out."""

    elapsed: float
    started: int
    cut: list[Any]
    timed_out: bool


def report_left(label: str, phase: Phase, total: int, timeout: float) -> None:
    if phase.timed_out:
        progress(
            f"WARNING: {label} timed out after {timeout:g} s: "
            f"{phase.started - len(phase.cut)}/{total} done, {len(phase.cut)} cut off in "
            f"flight, {total - phase.started} not started"
        )


async def bounded(
    items: Sequence[Any],
    concurrency: int,
    job: Callable[[Any], Awaitable[None]],
    label: str,
    timeout: float,
) -> Phase:
    """Run ``job`` over ``items`` in order, at most ``concurrency`` in flight (a fixed
    number of lanes), for at most ``timeout`` seconds: then the jobs in flight are
    cancelled and the rest is not started."""
    position = 0
    done = 0
    in_flight: dict[int, Any] = {}
    last_report = time.monotonic()

    async def lane() -> None:
        nonlocal position, done, last_report
        while position < len(items):
            index = position
            position += 1
            in_flight[index] = items[index]
            await job(items[index])
            del in_flight[index]
            done += 1
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                progress(f"{label}: {done}/{len(items)}")

    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(*(lane() for _ in range(max(1, min(concurrency, len(items))))))
    except TimeoutError:
        phase = Phase(timeout, position, list(in_flight.values()), True)
        report_left(label, phase, len(items), timeout)
        return phase
    return Phase(time.perf_counter() - started, len(items), [], False)


async def paced(
    items: Sequence[Any],
    rate: float,
    job: Callable[[Any], Awaitable[None]],
    label: str,
    timeout: float,
) -> tuple[Phase, float]:
    """Open loop: ``job(items[i])`` starts at start + i / rate whatever the earlier ones
    do, for at most ``timeout`` seconds (then the jobs not finished are cancelled and the
    rest is not started); the phase, and how far behind schedule the sender fell at most
    (s). The jobs bound their own requests in flight."""
    tasks: dict[asyncio.Task[None], Any] = {}
    behind = 0.0
    started = time.perf_counter()
    deadline = started + timeout
    for i, item in enumerate(items):
        due = started + i / rate
        if due >= deadline:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            behind = max(behind, -delay)
        tasks[asyncio.create_task(job(item))] = item
        if i and i % (int(rate) * 5 or 1) == 0:
            progress(f"{label}: {i}/{len(items)} sent")
    cut: list[Any] = []
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - time.perf_counter()))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        cut = [tasks[task] for task in pending]
        for task in done:
            task.result()  # a job's own error ends the bench here
    phase = Phase(
        time.perf_counter() - started, len(tasks), cut, bool(cut) or len(tasks) < len(items)
    )
    report_left(label, phase, len(items), timeout)
    return phase, behind


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
