"""How the benchmarks combine their runs' figures (no stack needed)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from bench.renewals import actions_in
from bench.webhooks import RunFigures, summarize

HISTORIES = Path(__file__).parent.parent / "workflows" / "histories"


def run(events: float, signals: float, p99: float, *, lost: int = 0, double: int = 0) -> RunFigures:
    return RunFigures(
        events_per_s=events,
        baseline_signals_per_s=signals,
        p50_ms=p99 / 2,
        p99_ms=p99,
        bare_p50_ms=1.0,
        bare_p99_ms=p99 / 4,
        lost=lost,
        double_applied=double,
        never_acknowledged=0,
        timed_out=(),
    )


def test_webhook_figures_are_medians_and_losses_the_worst_run() -> None:
    runs = [
        run(300.0, 600.0, 100.0, lost=2),
        run(400.0, 500.0, 80.0),
        run(350.0, 400.0, 120.0, double=1),
    ]
    assert summarize(runs) == {
        "events_per_s": 350.0,
        "baseline_signals_per_s": 500.0,
        # The median of the runs' ratios (0.5, 0.8, 0.875), not 350 / 500.
        "ratio": 0.8,
        "p99_ms": 100.0,
        "bare_p99_ms": 25.0,
        "lost": 2,
        "double_applied": 1,
    }


def test_a_run_whose_bare_signals_all_failed_has_no_ratio() -> None:
    assert math.isnan(run(300.0, 0.0, 100.0).ratio)
    assert summarize([run(300.0, 600.0, 100.0)])["ratio"] == pytest.approx(0.5)


def test_a_renewals_local_activities_are_one_action_per_workflow_task() -> None:
    """Temporal Cloud bills the markers a workflow task records as one action: the
    generation-3 renewal's two markers and generation 4's one cost the same."""

    def actions(name: str) -> int:
        text = (HISTORIES / f"{name}.json").read_text()
        return actions_in(WorkflowHistory.from_json(name, text).events)

    # Started, timer started, the markers of the renewal's task, continued as new: the
    # continue-as-new command itself is billed as the next run's start.
    assert actions("subscription_renewal_generation3") == 3
    assert actions("subscription_renewal_generation4") == 3
    # Generation 5 records outbound events; a plain renewal changes nothing they report.
    assert actions("subscription_renewal_generation5") == 3
