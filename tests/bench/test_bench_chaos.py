"""bench/chaos.py --quick (what CI runs): a small billing run with every fault class
injected at least once, and every invariant held afterwards (never its speed: the
guard and /healthz timings are the bench's to report, not a test's to assert)."""

from __future__ import annotations

import pytest

from tests.bench.test_bench_smoke import finite, run_bench

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.temporal]

FAULT_CLASSES = 8  # bench/chaos.py FAULTS


def test_a_billing_run_under_every_fault_class_keeps_every_invariant() -> None:
    figures = run_bench("chaos.py", "--quick")
    assert set(figures) == {
        "faults_injected",
        "double_charges",
        "lost_events",
        "unbalanced_currencies",
        "stuck_invoices",
        "five_xx",
        "secrets_found",
        "guard_worst_ms",
        "healthz_p99_ms_under_attack",
    }
    assert all(finite(v) for v in figures.values())
    assert figures["faults_injected"] >= FAULT_CLASSES
    for count in (
        "double_charges",
        "lost_events",
        "unbalanced_currencies",
        "stuck_invoices",
        "five_xx",
        "secrets_found",
    ):
        assert figures[count] == 0, (count, figures)
