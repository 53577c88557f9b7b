"""The renewal floor: what Temporal and a Python worker do for a renewal with no Dunwell code.

A floor workflow's first run waits on a timer ending at an instant T, then continues as
new once; the new run waits on a timer a month away and is never woken during the
bench. That is a renewal's shape in Temporal (timer fired, one workflow task,
continue-as-new, the next run's first task starting its next timer) with nothing in
between: no activity, no marker, no search attribute, a payload of a few bytes.

``python bench/_floor.py --address HOST:PORT --task-queue Q --status FILE`` runs the
floor worker: temporalio's ``Worker`` with the ``UnsandboxedWorkflowRunner`` the
production worker uses, the default data converter and no activity, in a process of its
own so its CPU can be read apart. The workflow code cannot report through Temporal
without adding work there, so it tells this process which runs it has seen, and the
process writes the counts to FILE (JSON, replaced a few times a second):
``{"waiting": {phase: runs}, "continued": {phase: runs}, "last_continued": {phase: unix time}}``.
A continued run is counted when its first workflow task reaches the worker, that is
once the server has committed the continue-as-new.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

WORKFLOW_NAME = "BenchFloor"
NEXT_PERIOD = timedelta(days=30)
STATUS_EVERY_SECONDS = 0.1

# What the workflow code has seen in this process. Run ids make it idempotent: a run
# replayed after a cache eviction is not counted twice.
_runs_seen: set[str] = set()
_counts: dict[str, Counter[str]] = {"waiting": Counter(), "continued": Counter()}
_last_continued: dict[str, float] = {}


def _seen(what: str, phase: str) -> None:
    run_id = workflow.info().run_id
    if run_id in _runs_seen:
        return
    _runs_seen.add(run_id)
    _counts[what][phase] += 1
    if what == "continued":
        _last_continued[phase] = time.time()


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class FloorWorkflow:
    @workflow.run
    async def run(self, phase: str, until: float) -> None:
        if until:
            _seen("waiting", phase)
            # The SDK refuses a timer of zero or less: a T already passed fires at once.
            await workflow.sleep(max(until - workflow.now().timestamp(), 0.001))
            workflow.continue_as_new(args=[phase, 0.0])
        _seen("continued", phase)
        await workflow.sleep(NEXT_PERIOD)


def read_status(path: Path) -> dict[str, dict[str, float]]:
    """The floor worker's last report; empty counts before its first."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"waiting": {}, "continued": {}, "last_continued": {}}
    assert isinstance(status, dict)
    return status


async def serve(args: argparse.Namespace) -> None:
    client = await Client.connect(args.address)
    status = Path(args.status)
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[FloorWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_cached_workflows=args.max_cached_workflows,
    )
    async with worker:
        written = None
        while True:
            report = {
                "waiting": dict(_counts["waiting"]),
                "continued": dict(_counts["continued"]),
                "last_continued": dict(_last_continued),
            }
            if report != written:
                partial = status.with_suffix(".partial")
                partial.write_text(json.dumps(report))
                partial.replace(status)
                written = report
            await asyncio.sleep(STATUS_EVERY_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--status", required=True)
    parser.add_argument("--max-cached-workflows", type=int, default=1000)
    args = parser.parse_args()

    def leave(_signum: int, _frame: object) -> None:
        # Nothing to hand back: every run is either waiting on its timer or done. Leave
        # at once rather than through the Rust bridge's shutdown (sdk-python issue 300).
        sys.stderr.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, leave)
    signal.signal(signal.SIGINT, leave)
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
