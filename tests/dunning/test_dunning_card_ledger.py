"""A charge the card's attempt ledger refuses (``AttemptRefused``): nothing reached the
gateway, so it is not an attempt; a blocked card is blocked for this invoice too, and a
card capped by another invoice's attempts waits until the caps allow."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    AttemptRefused,
    CardRef,
    DunningState,
    PaymentMethodUpdated,
    Policy,
    RetryAt,
    RetryNow,
    Started,
    Stop,
    TimerFired,
    WaitForCustomer,
    decide,
    load_policy,
)
from billing.dunning.network_rules import (
    CardAttempt,
    earliest_allowed,
    max_in_any_window,
    network_rules,
)
from billing.dunning.timing import in_daytime
from tests.support.mutation import examples

V2 = load_policy("standard", 2)
V3 = load_policy("standard", 3)
AT = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)
VISA = CardRef("fp_visa", "visa")
MASTERCARD = CardRef("fp_mc", "mastercard")
SOFT = DeclineInfo(decline_code="do_not_honor")


def _first_retry(policy: Policy) -> tuple[DunningState, datetime]:
    started = Started("in_ledger", 4200, "EUR", VISA, 60, AT, policy, SOFT)
    state, decision = decide(None, started, AT, 0.5)
    assert isinstance(decision, RetryAt)
    state, decision = decide(state, TimerFired(decision.when), decision.when, 0.5)
    assert decision == RetryNow("scheduled_retry") and state.scheduled_retries == 1
    return state, decision_time(state)


def decision_time(state: DunningState) -> datetime:
    return state.due_at or max(a.at for a in state.attempts) + timedelta(days=1)


def test_a_capped_card_waits_and_the_retry_is_given_back() -> None:
    state, _ = _first_retry(V3)
    now = AT + timedelta(days=1)
    not_before = now + timedelta(hours=30)
    state, decision = decide(state, AttemptRefused(now, not_before), now, 0.5)
    assert isinstance(decision, RetryAt) and decision.reason == "network_cap"
    assert decision.when >= not_before and in_daytime(V3, decision.when, 60)
    assert state.scheduled_retries == 0 and len(state.attempts) == 1  # not an attempt
    state, decision = decide(state, TimerFired(decision.when), decision.when, 0.5)
    assert decision == RetryNow("scheduled_retry") and state.scheduled_retries == 1


def test_a_card_blocked_by_another_invoice_waits_for_a_new_card() -> None:
    state, _ = _first_retry(V3)
    now = AT + timedelta(days=1)
    state, decision = decide(state, AttemptRefused(now), now, 0.5)
    assert decision == WaitForCustomer("hard_decline", AT + V3.window)
    assert VISA.fingerprint in state.blocked_cards
    new_card = CardRef("fp_new", "visa")
    state, decision = decide(state, PaymentMethodUpdated(new_card, now), now, 0.5)
    assert decision == RetryNow("payment_method_updated")


def test_standard_v2_stops_on_a_card_blocked_by_another_invoice() -> None:
    state, _ = _first_retry(V2)
    now = AT + timedelta(days=1)
    _, decision = decide(state, AttemptRefused(now), now, 0.5)
    assert isinstance(decision, Stop) and decision.reason == "hard_decline"


def test_a_refused_new_card_retry_stays_owed_and_is_counted_once() -> None:
    state, _ = _first_retry(V3)
    now = AT + timedelta(days=1)
    state, _ = decide(state, AttemptFailed(now, SOFT), now, 0.5)
    new_card = CardRef("fp_new", "visa")
    state, decision = decide(state, PaymentMethodUpdated(new_card, now), now, 0.5)
    assert decision == RetryNow("payment_method_updated") and state.immediate_retries == 1
    later = now + timedelta(hours=2)
    state, decision = decide(state, AttemptRefused(now, later), now, 0.5)
    assert decision == RetryAt(later, "payment_method_updated")  # in person: no daytime
    state, decision = decide(state, TimerFired(later), later, 0.5)
    assert decision == RetryNow("payment_method_updated") and state.immediate_retries == 1


def test_a_refusal_past_the_window_ends_the_run() -> None:
    state, _ = _first_retry(V3)
    now = AT + timedelta(days=1)
    _, decision = decide(state, AttemptRefused(now, AT + V3.window + timedelta(days=1)), now, 0.5)
    assert isinstance(decision, Stop) and decision.reason == "network_cap"


def test_a_refusal_without_a_charge_in_flight_changes_nothing() -> None:
    started = Started("in_ledger", 4200, "EUR", VISA, 60, AT, V3, SOFT)
    state, decision = decide(None, started, AT, 0.5)
    assert decide(state, AttemptRefused(AT), AT, 0.5) == (state, decision)


def _two_runs_on_one_card(
    policy: Policy, card: CardRef, seed: int, gap_minutes: int
) -> list[datetime]:
    """Two invoices in dunning on one card, every charge declined softly; each charge
    first passes a ledger over both runs' attempts, as the charge activity's does."""
    rng = random.Random(seed)
    ledger: list[CardAttempt] = []
    rules = network_rules().for_brand(card.brand)
    runs = []
    for n, start in enumerate((AT, AT + timedelta(minutes=gap_minutes))):
        started = Started(f"in_{n}", 1000, "EUR", card, 60, start, policy, SOFT)
        ledger.append(CardAttempt(start))
        runs.append(decide(None, started, start, rng.random()))
    clock = runs[-1][0].started_at
    for _ in range(400):
        live = [(i, r) for i, r in enumerate(runs) if not r[0].finished]
        if not live:
            break
        index, (state, decision) = min(live, key=lambda item: _due(item[1][1], clock))
        now = clock = _due(decision, clock)
        if isinstance(decision, RetryNow):
            earliest = earliest_allowed(rules, ledger, now)
            if earliest is not None and earliest > now:
                runs[index] = decide(state, AttemptRefused(now, earliest), now, rng.random())
                continue
            ledger.append(CardAttempt(now))
            runs[index] = decide(state, AttemptFailed(now, SOFT), now, rng.random())
        else:
            runs[index] = decide(state, TimerFired(now), now, rng.random())
    return [a.at for a in ledger]


def _due(decision: object, clock: datetime) -> datetime:
    if isinstance(decision, RetryAt):
        return max(decision.when, clock)
    if isinstance(decision, WaitForCustomer):
        return max(decision.deadline, clock)
    assert isinstance(decision, RetryNow), decision
    return clock


# A policy that retries fast, so the network caps, not the policy, bind.
STRESS = V3.__class__(**{**V3.__dict__, "policy_id": "stress", "max_retries": 40,
    "window_hours": 24 * 40, "first_delay_minutes": 10, "backoff_factor_percent": 100,
    "max_delay_minutes": 30, "min_gap_minutes": 1, "daytime_start_hour": None,
    "daytime_end_hour": None})  # fmt: skip


@settings(max_examples=examples(40), deadline=None)
@given(
    card=st.sampled_from([VISA, MASTERCARD]),
    seed=st.integers(0, 10_000),
    gap=st.integers(0, 3 * 24 * 60),
)
def test_caps_hold_per_card_across_two_concurrent_invoices(
    card: CardRef, seed: int, gap: int
) -> None:
    times = _two_runs_on_one_card(STRESS, card, seed, gap)
    assert len(times) > 15  # both runs kept trying: the caps, not the policy, bound them
    if card.brand == "mastercard":
        assert max_in_any_window(times, timedelta(hours=24)) <= 10
        assert max_in_any_window(times, timedelta(days=30)) <= 35
    else:
        assert max_in_any_window(times, timedelta(days=30)) <= 15
