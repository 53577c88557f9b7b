"""The benchmarks run with tiny counts and end with their JSON figures.

The end-to-end ones start their own stack (Temporal dev server, PostgreSQL database,
localstripe, worker, API) as subprocesses, and the ledger one a PostgreSQL database, so
these tests need the same peers as the integration tests. They check the shape and
sanity of the figures, never their speed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_SECONDS = 300

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.temporal]


def run_bench(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-4000:]}"
    last = done.stdout.strip().splitlines()[-1]
    figures = json.loads(last)
    assert isinstance(figures, dict)
    return figures


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_renewals_bench_prints_its_figures_and_its_floor() -> None:
    figures = run_bench(
        "renewals.py", "--n", "5", "--warmup", "2", "--sample", "2", "--margin", "2"
    )
    assert set(figures) == {
        "renewals_per_s",
        "floor_per_s",
        "ratio",
        "worker_cpu_ms_per_renewal",
        "actions_per_renewal",
        "kb_per_cached_workflow",
    }
    assert all(finite(v) for v in figures.values())
    assert figures["renewals_per_s"] > 0
    assert figures["floor_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["renewals_per_s"] / figures["floor_per_s"], rel=0.02
    )
    assert figures["worker_cpu_ms_per_renewal"] >= 0
    # A renewal schedules its activities and the next run's timer: some actions, not none.
    assert 1 <= figures["actions_per_renewal"] < 1000


def test_webhooks_bench_prints_its_figures_and_loses_nothing() -> None:
    figures = run_bench(
        "webhooks.py",
        "--runs",
        "1",
        "--subscriptions",
        "10",
        "--events",
        "3",
        "--concurrency",
        "4",
        "--rate",
        "20",
    )
    assert set(figures) == {
        "events_per_s",
        "baseline_signals_per_s",
        "ratio",
        "p99_ms",
        "bare_p99_ms",
        "lost",
        "double_applied",
    }
    assert all(finite(v) for v in figures.values())
    assert figures["events_per_s"] > 0 and figures["baseline_signals_per_s"] > 0
    # One run: the median of its ratio is its ratio.
    assert figures["ratio"] == pytest.approx(
        figures["events_per_s"] / figures["baseline_signals_per_s"], rel=0.01
    )
    assert figures["p99_ms"] > 0 and figures["bare_p99_ms"] > 0
    assert figures["lost"] == 0
    assert figures["double_applied"] == 0


def test_outbound_bench_prints_its_figures_and_loses_nothing() -> None:
    figures = run_bench(
        "outbound.py",
        "--runs",
        "1",
        "--events",
        "60",
        "--subscriptions",
        "6",
        "--baseline-posts",
        "50",
        "--rate",
        "20",
        "--latency-seconds",
        "1",
    )
    assert set(figures) == {
        "delivered_per_s",
        "baseline_posts_per_s",
        "ratio",
        "p99_ms",
        "lost",
        "duplicated",
    }
    assert all(finite(v) for v in figures.values())
    assert figures["delivered_per_s"] > 0 and figures["baseline_posts_per_s"] > 0
    assert figures["ratio"] == pytest.approx(
        figures["delivered_per_s"] / figures["baseline_posts_per_s"], rel=0.01
    )
    assert figures["p99_ms"] > 0
    assert figures["lost"] == 0 and figures["duplicated"] == 0


def test_ledger_bench_prints_its_figures_and_floors() -> None:
    figures = run_bench(
        "ledger.py",
        "--entries",
        "20",
        "--batch-entries",
        "60",
        "--batch-size",
        "20",
        "--accounts",
        "4",
        "--repeat",
        "2",
    )
    assert set(figures) == {
        "single_per_s",
        "batched_per_s",
        "raw_single_per_s",
        "raw_batched_per_s",
        "single_ratio",
        "batched_ratio",
    }
    assert all(finite(v) and v > 0 for v in figures.values())
    # The median of the repeats' ratios: near the ratio of the medians, not equal to it.
    assert figures["batched_ratio"] == pytest.approx(
        figures["batched_per_s"] / figures["raw_batched_per_s"], rel=0.5
    )
