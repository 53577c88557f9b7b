"""bench/reconcile.py with a tiny payout: its figures, every injected mismatch found and
none invented (never its speed)."""

from __future__ import annotations

import pytest

from tests.bench.test_bench_smoke import finite, run_bench

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.temporal]


def test_reconcile_bench_finds_what_it_injected() -> None:
    figures = run_bench("reconcile.py", "--n", "300", "--repeat", "1")
    assert set(figures) == {
        "reconciled_per_s",
        "injected",
        "found",
        "false_positives",
        "max_history_kb",
        "floor_per_s",
        "ratio",
    }
    assert all(finite(v) for v in figures.values())
    assert figures["injected"] == figures["found"] == 8
    assert figures["false_positives"] == 0
    assert 0 < figures["max_history_kb"] < 2048
