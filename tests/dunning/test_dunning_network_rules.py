"""The rolling-window arithmetic and the rule tables' content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.dunning.network_rules import (
    CardAttempt,
    earliest_allowed,
    forbids_retry,
    max_in_any_window,
    network_rules,
)

T0 = datetime(2026, 2, 1, tzinfo=UTC)

# Equivalent mutants: `or "XXXX"` for `or ""` in earliest_allowed's advice lookup (no
# brand has an advice code "" or "XXXX"); `<=` for `<` at the window's start in
# _cap_bound (see tests/dunning/test_dunning_edges.py).


def test_tables_carry_the_published_limits_and_sources() -> None:
    rules = network_rules()
    visa, mc = rules.for_brand("visa"), rules.for_brand("Mastercard")
    assert [(c.window, c.max_attempts) for c in visa.rolling_caps] == [(timedelta(days=30), 15)]
    assert {(c.window, c.max_attempts) for c in mc.rolling_caps} == {
        (timedelta(hours=24), 10),
        (timedelta(days=30), 35),
    }
    assert mc.retry_after_advice_codes["24"] == timedelta(hours=1)
    assert mc.retry_after_advice_codes["30"] == timedelta(days=10)
    assert {"03", "21"} <= mc.stop_advice_codes
    assert {"04", "R1", "41", "43"} <= visa.never_retry_network_decline_codes
    assert rules.for_brand("discover") is rules.for_brand(None) is rules.brands["default"]
    assert all(rule.source for rule in rules.brands.values())


def test_earliest_allowed_waits_for_the_oldest_attempt_to_leave_the_window() -> None:
    visa = network_rules().for_brand("visa")
    history = [CardAttempt(T0 + timedelta(hours=h)) for h in range(15)]
    now = T0 + timedelta(hours=20)
    assert earliest_allowed(visa, history[:14], now) == now
    assert earliest_allowed(visa, history, now) == T0 + timedelta(days=30)
    times = [a.at for a in history] + [T0 + timedelta(days=30)]
    assert max_in_any_window(times, timedelta(days=30)) == 15


def test_mastercard_daily_cap_and_advice() -> None:
    mc = network_rules().for_brand("mastercard")
    history = [CardAttempt(T0 + timedelta(minutes=m)) for m in range(10)]
    assert earliest_allowed(mc, history, T0 + timedelta(hours=1)) == T0 + timedelta(hours=24)
    advised = [CardAttempt(T0, network_advice_code="27")]
    assert earliest_allowed(mc, advised, T0) == T0 + timedelta(days=4)
    stopped = [CardAttempt(T0, network_advice_code="21")]
    assert forbids_retry(mc, stopped[0])
    assert earliest_allowed(mc, stopped, T0 + timedelta(days=60)) is None


def test_max_in_any_window_is_half_open() -> None:
    day = timedelta(hours=24)
    assert max_in_any_window([T0, T0 + day], day) == 1
    assert max_in_any_window([T0, T0 + day - timedelta(seconds=1)], day) == 2
    assert max_in_any_window([], day) == 0
