"""bench/oss.py with a few thousand line records: its figures (never its speed)."""

from __future__ import annotations

import pytest

from tests.bench.test_bench_smoke import finite, run_bench

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_oss_bench_prints_its_figures() -> None:
    figures = run_bench("oss.py", "--lines", "3000", "--runs", "1")
    assert set(figures) == {"oss_return_s", "oss_floor_s"}
    assert all(finite(v) and v > 0 for v in figures.values())
