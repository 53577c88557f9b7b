"""Property tests of the pure dunning scheduler: whatever the outcomes and events, the
network rules, the policy bounds and cancellation hold, and the schedule is a function
of its inputs."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.declines import DeclineFamily, classify_decline
from billing.dunning import RetryAt, RetryNow, load_policy, policy_for
from billing.dunning.network_rules import max_in_any_window
from tests.dunning.dunning_driver import CARDS, Charge, Run, Step, run_script
from tests.support.mutation import examples

# The rules as published (DOMAIN notes), written out here rather than read from the
# scheduler's data so that a wrong data file fails these tests.
VISA_CATEGORY_1 = {"04", "07", "12", "14", "15", "41", "43", "46", "57", "R0", "R1", "R3"}
MAC_STOP = {"03", "21"}
MAC_WAIT = {
    "24": timedelta(hours=1),
    "25": timedelta(hours=24),
    "26": timedelta(days=2),
    "27": timedelta(days=4),
    "28": timedelta(days=6),
    "29": timedelta(days=8),
    "30": timedelta(days=10),
}
IMMEDIATE = {"payment_method_updated", "card_updater", "ops_retry"}

# A policy that retries fast and often, so that the network caps, not the policy, bind.
STRESS = replace(
    load_policy("standard", 2),
    policy_id="stress",
    max_retries=60,
    window_hours=24 * 60,
    first_delay_minutes=10,
    backoff_factor_percent=100,
    max_delay_minutes=30,
    min_gap_minutes=1,
    max_immediate_retries=200,
)
POLICIES = (
    STRESS,
    load_policy("standard", 1),
    policy_for("any", "smb"),
    policy_for("any", "enterprise"),
    policy_for("starter_monthly", "smb"),
)

steps = st.builds(
    Step,
    action=st.integers(0, 10_000),
    decline=st.integers(0, 10_000),
    minutes=st.one_of(st.integers(0, 30), st.integers(0, 3 * 24 * 60)),
    rand=st.floats(0.0, 1.0, exclude_max=True, allow_nan=False),
)
scripts = st.tuples(
    st.sampled_from(POLICIES),
    st.sampled_from(CARDS),
    st.integers(0, 100),
    st.lists(steps, min_size=40, max_size=150),
)

# Mastercard bursts: fast retries, quick events and soft declines without advice delays,
# so that the 10-per-24-hours cap is what stops them.
burst_steps = st.builds(
    Step,
    action=st.integers(0, 10_000),
    decline=st.integers(0, 6).map(lambda k: k * 10),
    minutes=st.integers(0, 20),
    rand=st.floats(0.0, 1.0, exclude_max=True, allow_nan=False),
)
mastercard_bursts = st.tuples(
    st.just(STRESS),
    st.just(CARDS[1]),
    st.just(0),
    st.lists(burst_steps, min_size=40, max_size=150),
)

PROPERTY_SETTINGS = settings(max_examples=examples(200), deadline=None)


def _run(script: tuple) -> Run:  # type: ignore[type-arg]
    policy, card, first, plan = script
    return run_script(policy, card, first, plan)


def _is_hard(charge: Charge) -> bool:
    decline = charge.decline
    if decline is None:
        return False
    brand = charge.card.brand
    if brand == "visa" and (decline.network_decline_code or "") in VISA_CATEGORY_1:
        return True
    if brand == "mastercard" and decline.network_advice_code in MAC_STOP:
        return True
    info = replace(decline, card_brand=brand)
    return classify_decline(info).family is DeclineFamily.HARD


def _by_card(charges: list[Charge]) -> dict[str, list[Charge]]:
    grouped: dict[str, list[Charge]] = {}
    for charge in charges:
        grouped.setdefault(charge.card.fingerprint, []).append(charge)
    return grouped


@PROPERTY_SETTINGS
@given(scripts)
def test_no_charge_on_a_card_after_a_hard_decline(script) -> None:
    for charges in _by_card(_run(script).charges).values():
        hard_at = [c.at for c in charges if _is_hard(c)]
        if hard_at:
            assert all(c.at <= hard_at[0] for c in charges)


@PROPERTY_SETTINGS
@given(scripts)
def test_no_charge_before_a_mastercard_advice_delay_ends(script) -> None:
    for charges in _by_card(_run(script).charges).values():
        for earlier, later in itertools.pairwise(charges):
            if earlier.card.brand != "mastercard" or earlier.decline is None:
                continue
            wait = MAC_WAIT.get(earlier.decline.network_advice_code or "")
            if wait is not None:
                assert later.at >= earlier.at + wait


@PROPERTY_SETTINGS
@given(st.one_of(scripts, mastercard_bursts))
def test_network_caps_hold_per_card_in_every_rolling_window(script) -> None:
    for charges in _by_card(_run(script).charges).values():
        times = [c.at for c in charges]
        if charges[0].card.brand == "mastercard":
            assert max_in_any_window(times, timedelta(hours=24)) <= 10
            assert max_in_any_window(times, timedelta(days=30)) <= 35
        else:  # Visa, and the conservative default for other brands
            assert max_in_any_window(times, timedelta(days=30)) <= 15


@PROPERTY_SETTINGS
@given(scripts)
def test_attempts_stay_inside_the_policy_window_and_counts(script) -> None:
    policy = script[0]
    run = _run(script)
    first_failure = min(c.at for c in run.charges if c.decline is not None)
    window_end = first_failure + timedelta(hours=policy.window_hours)
    for now, _event, decision in run.decisions:
        if isinstance(decision, RetryNow):
            assert first_failure <= now <= window_end
        if isinstance(decision, RetryAt):
            assert decision.when <= window_end
    reasons = [d.reason for _, _, d in run.decisions if isinstance(d, RetryNow)]
    assert reasons.count("scheduled_retry") <= policy.max_retries
    immediate = [r for r in reasons if r in IMMEDIATE]
    assert len(immediate) <= min(run.card_events, policy.max_immediate_retries)
    assert set(reasons) <= IMMEDIATE | {"scheduled_retry", "outage_retry"}
    assert reasons.count("outage_retry") <= policy.outage_budget
    assert run.states[-1].outage_retries == reasons.count("outage_retry")
    assert run.states[-1].scheduled_retries == reasons.count("scheduled_retry")


@PROPERTY_SETTINGS
@given(scripts, st.integers(0, 39))
def test_no_retry_is_ever_decided_after_the_customer_cancels(script, cancel_at_step) -> None:
    policy, card, first, plan = script
    run = run_script(policy, card, first, plan, cancel_at_step)
    if run.cancelled_at is None:  # dunning ended before the cancellation step
        assert run.states[-1].finished
        return
    cancel = next(
        i for i, (_, e, _) in enumerate(run.decisions) if type(e).__name__ == "CustomerCancelled"
    )
    undo = next(
        (
            i
            for i, (_, e, _) in enumerate(run.decisions)
            if i > cancel and type(e).__name__ == "CancellationUndone"
        ),
        len(run.decisions),
    )
    assert not any(isinstance(d, (RetryAt, RetryNow)) for _, _, d in run.decisions[cancel:undo])
    undone_at = run.decisions[undo][0] if undo < len(run.decisions) else None
    assert all(
        c.decided_at <= run.cancelled_at or (undone_at and c.decided_at >= undone_at)
        for c in run.charges
    )


@PROPERTY_SETTINGS
@given(scripts, st.integers(0, 39), st.integers(1, 30))
def test_an_undone_cancellation_resumes_within_every_rule(script, cancel_at, gap) -> None:
    """Cancel, then undo: nothing is decided while cancelled, and the attempts before and
    after count together against the caps, the hard-decline stop and the policy window."""
    policy, card, first, plan = script
    run = run_script(policy, card, first, plan, cancel_at, cancel_at + gap)
    for state, (_, _, decision) in zip(run.states, run.decisions, strict=True):
        if state.cancelled_at is not None:
            assert not isinstance(decision, (RetryAt, RetryNow))
    for charges in _by_card(run.charges).values():
        hard_at = [c.at for c in charges if _is_hard(c)]
        if hard_at:
            assert all(c.at <= hard_at[0] for c in charges)
        times = [c.at for c in charges]
        if charges[0].card.brand == "mastercard":
            assert max_in_any_window(times, timedelta(hours=24)) <= 10
            assert max_in_any_window(times, timedelta(days=30)) <= 35
        else:
            assert max_in_any_window(times, timedelta(days=30)) <= 15
    first_failure = min(c.at for c in run.charges if c.decline is not None)
    window_end = first_failure + timedelta(hours=policy.window_hours)
    assert all(first_failure <= c.decided_at <= window_end for c in run.charges[1:])


@PROPERTY_SETTINGS
@given(scripts)
def test_same_inputs_give_the_same_schedule(script) -> None:
    first, second = _run(script), _run(script)
    assert first.decisions == second.decisions
    assert first.states == second.states
