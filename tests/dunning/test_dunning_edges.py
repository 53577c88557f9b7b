"""Edges of the dunning scheduler that the example paths do not reach: a card update or
ops retry the network delays, the rolling cap's window bounds, a retry due exactly at
the window's end, and ops events on a cancelled run."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    CancellationUndone,
    CardRef,
    CustomerCancelled,
    DunningEvent,
    EndAction,
    InvoiceEndAction,
    OpsPause,
    OpsResume,
    OpsRetryNow,
    Paused,
    PaymentMethodUpdated,
    Phase,
    RetryAt,
    RetryNow,
    Started,
    Stop,
    TimerFired,
    WaitForCustomer,
    decide,
    load_policy,
)
from billing.dunning.network_rules import CardAttempt, earliest_allowed, network_rules

AT = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
VISA = CardRef("fp_visa", "visa")
MASTERCARD = CardRef("fp_mc", "mastercard")
STANDARD = load_policy("standard", 2)
# An expired Mastercard whose issuer also asks for an hour's pause (MAC 24): the run
# waits for the customer, and the card's next attempt is not allowed before AT + 1 h.
EXPIRED_WAIT_AN_HOUR = DeclineInfo(decline_code="expired_card", network_advice_code="24")


def start(decline: DeclineInfo, *, card: CardRef = VISA, policy=STANDARD):
    return decide(None, Started("in_1", 2500, "USD", card, 0, AT, policy, decline), AT, 0.5)


def do_not_honor() -> DeclineInfo:
    return DeclineInfo(decline_code="do_not_honor")


# --- a card update or ops retry that the network delays ------------------------------------


@pytest.mark.parametrize(
    ("event", "trigger"),
    [
        (PaymentMethodUpdated(MASTERCARD, AT + timedelta(minutes=10)), "payment_method_updated"),
        (OpsRetryNow(AT + timedelta(minutes=10)), "ops_retry"),
    ],
)
def test_a_delayed_immediate_retry_while_waiting_for_the_customer_is_scheduled(
    event: DunningEvent, trigger: str
) -> None:
    state, decision = start(EXPIRED_WAIT_AN_HOUR, card=MASTERCARD)
    assert decision == WaitForCustomer("fix_data", AT + STANDARD.window)
    now = AT + timedelta(minutes=10)
    state, decision = decide(state, event, now, 0.5)
    # No longer waiting: the retry is due when the network allows it.
    allowed = AT + timedelta(hours=1)
    assert decision == RetryAt(allowed, trigger)
    assert state.phase is Phase.SCHEDULED
    assert (state.scheduled_retries, state.immediate_retries) == (0, 1)
    # The timer retries the card; it does not end dunning as customer_did_not_act.
    state, decision = decide(state, TimerFired(allowed), allowed, 0.5)
    assert decision == RetryNow(trigger)
    # Rule 4: it is an immediate retry, not one of the policy's scheduled retries.
    assert (state.scheduled_retries, state.immediate_retries) == (0, 1)
    state, decision = decide(state, AttemptFailed(allowed, do_not_honor()), allowed, 0.5)
    assert [a.trigger.value for a in state.attempts] == ["initial_attempt", trigger]
    assert isinstance(decision, RetryAt) and decision.reason == "backoff"
    assert state.scheduled_retries == 0


@pytest.mark.parametrize(
    "event",
    [PaymentMethodUpdated(MASTERCARD, AT + timedelta(minutes=10)), OpsRetryNow(AT)],
)
def test_a_delayed_immediate_retry_is_made_even_with_no_scheduled_retries_left(
    event: DunningEvent,
) -> None:
    policy = replace(STANDARD, max_retries=0)
    state, _ = start(EXPIRED_WAIT_AN_HOUR, card=MASTERCARD, policy=policy)
    state, decision = decide(state, event, event.at, 0.5)
    assert isinstance(decision, RetryAt)
    state, decision = decide(state, TimerFired(decision.when), decision.when, 0.5)
    assert isinstance(decision, RetryNow) and decision.reason != "scheduled_retry"
    assert state.scheduled_retries == 0


# --- the rolling cap's window ---------------------------------------------------------------


def _mastercard_history(count: int) -> list[CardAttempt]:
    return [CardAttempt(AT + timedelta(minutes=i)) for i in range(count)]


def test_an_attempt_at_the_same_instant_as_the_capped_one_is_counted() -> None:
    # Mastercard: at most 10 attempts in (t - 24 h, t]. The tenth was at AT + 9 min, so an
    # eleventh at that same instant is over the cap; it waits until the first one leaves.
    rules = network_rules().for_brand("mastercard")
    history = _mastercard_history(10)
    assert earliest_allowed(rules, history, AT + timedelta(minutes=9)) == AT + timedelta(days=1)
    assert earliest_allowed(rules, history[:9], AT + timedelta(minutes=9)) == AT + timedelta(
        minutes=9
    )


def test_an_attempt_exactly_one_window_old_has_left_the_window() -> None:
    # The window is half-open at its start: at AT + 24 h the attempt at AT no longer counts.
    # (Counting it, i.e. `<=` for `<` at the window's start in _cap_bound, is equivalent:
    # the surplus attempt is then that very one, and it leaves the window at t itself.)
    rules = network_rules().for_brand("mastercard")
    history = _mastercard_history(10)
    day = AT + timedelta(days=1)
    assert earliest_allowed(rules, history, day) == day
    assert earliest_allowed(rules, history, day - timedelta(microseconds=1)) == day


# --- a retry due exactly at the window's end ------------------------------------------------


def test_a_retry_due_exactly_at_the_window_end_is_made() -> None:
    policy = replace(STANDARD, window_hours=24)
    state, decision = start(do_not_honor(), policy=policy)
    assert isinstance(decision, RetryAt) and decision.reason == "backoff"
    when = decision.when
    state, decision = decide(state, TimerFired(when), when, 0.5)
    state, decision = decide(state, AttemptFailed(when, do_not_honor()), when, 0.5)
    # The next backoff step would land after the window: the retry moves to its end ...
    window_end = AT + timedelta(hours=24)
    assert decision == RetryAt(window_end, "window_end")
    # ... and is made there: the window's end is still inside the window.
    state, decision = decide(state, TimerFired(window_end), window_end, 0.5)
    assert decision == RetryNow("scheduled_retry")
    state, decision = decide(state, AttemptFailed(window_end, do_not_honor()), window_end, 0.5)
    assert isinstance(decision, Stop) and decision.reason == "window_elapsed"


# --- ops events on a cancelled run ----------------------------------------------------------


def _cancelled(policy=STANDARD):
    state, _ = start(do_not_honor(), policy=policy)
    now = AT + timedelta(days=1)
    state, decision = decide(state, CustomerCancelled(now), now, 0.5)
    grace_end = AT + timedelta(hours=policy.grace_period_hours)
    assert decision == Paused("customer_cancelled", grace_end)
    return state, decision, grace_end


def test_an_ops_pause_on_a_cancelled_run_keeps_the_cancellation_deadline() -> None:
    state, cancelled, grace_end = _cancelled()
    now = AT + timedelta(days=2)
    paused_state, decision = decide(state, OpsPause(now), now, 0.5)
    assert (paused_state, decision) == (state, cancelled)
    # Ops resume does not lift a customer's cancellation either.
    assert decide(paused_state, OpsResume(now), now, 0.5) == (state, cancelled)
    _, end = decide(paused_state, TimerFired(grace_end), grace_end, 0.5)
    assert end == Stop(
        EndAction.CANCEL, InvoiceEndAction.LEAVE_OPEN, "customer_cancelled", grace_end
    )


def test_an_ops_pause_during_a_cancelled_charge_still_ends_at_its_outcome() -> None:
    state, decision = start(do_not_honor())
    when = decision.when
    state, decision = decide(state, TimerFired(when), when, 0.5)
    assert decision == RetryNow("scheduled_retry")
    late = AT + timedelta(days=10)  # past the grace period
    state, decision = decide(state, CustomerCancelled(late), late, 0.5)
    assert decision == Paused("customer_cancelled", late)
    state, decision = decide(state, OpsPause(late), late, 0.5)
    assert decision == Paused("customer_cancelled", late)
    _, decision = decide(state, AttemptFailed(late, do_not_honor()), late, 0.5)
    assert decision == Stop(
        EndAction.CANCEL, InvoiceEndAction.LEAVE_OPEN, "customer_cancelled", late
    )


def test_undoing_a_cancellation_resumes_dunning() -> None:
    state, _, _ = _cancelled()
    now = AT + timedelta(days=1, hours=1)
    state, decision = decide(state, CancellationUndone(now), now, 0.5)
    assert isinstance(decision, RetryAt) and decision.reason == "backoff"
    assert state.cancelled_at is None and state.phase is Phase.SCHEDULED
    _, decision = decide(state, TimerFired(decision.when), decision.when, 0.5)
    assert decision == RetryNow("scheduled_retry")


@pytest.mark.parametrize("event", [CancellationUndone(AT), OpsResume(AT)])
def test_an_undo_or_resume_with_nothing_to_undo_changes_nothing(event: DunningEvent) -> None:
    state, decision = start(do_not_honor())
    assert isinstance(decision, RetryAt)
    # Another rand would jitter a freshly planned retry elsewhere: nothing is replanned.
    now = AT + timedelta(hours=1)
    assert decide(state, replace(event, at=now), now, 0.95) == (state, decision)


def test_a_cancelled_run_ends_with_cancel_whatever_the_policys_end_action() -> None:
    policy = replace(
        STANDARD,
        end_action=EndAction.MARK_UNPAID,
        invoice_end_action=InvoiceEndAction.MARK_UNCOLLECTIBLE,
    )
    state, _, grace_end = _cancelled(policy)
    _, end = decide(state, TimerFired(grace_end), grace_end, 0.5)
    assert end == Stop(
        EndAction.CANCEL, InvoiceEndAction.MARK_UNCOLLECTIBLE, "customer_cancelled", grace_end
    )
    # Cancelled after the grace period: the same end action, at once.
    state, _ = start(do_not_honor(), policy=policy)
    late = AT + timedelta(days=9)
    _, end = decide(state, CustomerCancelled(late), late, 0.5)
    assert end == Stop(
        EndAction.CANCEL, InvoiceEndAction.MARK_UNCOLLECTIBLE, "customer_cancelled", late
    )
