"""Example paths through the dunning scheduler, one per decline family and event."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    AttemptSucceeded,
    AwaitingOutcome,
    CardRef,
    CardUpdaterEvent,
    CustomerCancelled,
    DunningState,
    EndAction,
    InvoiceEndAction,
    OpsEnd,
    OpsPause,
    OpsResume,
    OpsRetryNow,
    Paused,
    PaymentMethodUpdated,
    Phase,
    Policy,
    Recovered,
    RetryAt,
    RetryNow,
    Started,
    Stop,
    TimerFired,
    WaitForCustomer,
    decide,
    load_policy,
)

VISA = CardRef("fp_visa", "visa")
MASTERCARD = CardRef("fp_mc", "mastercard")
NEW_VISA = CardRef("fp_visa_new", "visa")
NEW_YORK = -300  # UTC-05:00 in January
STANDARD = load_policy("standard", 2)


def start(
    decline: DeclineInfo,
    at: datetime,
    *,
    card: CardRef = VISA,
    policy: Policy = STANDARD,
    offset: int = NEW_YORK,
    rand: float = 0.5,
):
    return decide(None, Started("in_1", 2500, "USD", card, offset, at, policy, decline), at, rand)


def fail_with(code: str, **network: str) -> DeclineInfo:
    return DeclineInfo(decline_code=code, **network)


def local(instant: datetime, offset: int = NEW_YORK) -> datetime:
    return instant + timedelta(minutes=offset)


def fire(state: DunningState, decision, rand: float = 0.5):
    assert isinstance(decision, RetryAt)
    return decide(state, TimerFired(decision.when), decision.when, rand)


def retry_and_fail(state: DunningState, decision, decline: DeclineInfo, rand: float = 0.5):
    """Fire the retry timer, charge, and report the decline at the same instant."""
    when = decision.when
    state, charge = fire(state, decision, rand)
    assert isinstance(charge, RetryNow)
    return decide(state, AttemptFailed(when, decline), when, rand)


# --- insufficient funds: pay dates and the customer's morning -------------------------


@pytest.mark.parametrize("rand", [0.0, 0.13, 0.5, 0.77, 0.999])
def test_insufficient_funds_retry_lands_on_a_nearby_pay_date_morning(rand: float) -> None:
    # Tuesday 13 January 2026, 15:00 UTC; 15 January (Thursday) is a pay date 2 days on.
    failed_at = datetime(2026, 1, 13, 15, 0, tzinfo=UTC)
    _, decision = start(fail_with("insufficient_funds"), failed_at, rand=rand)
    assert isinstance(decision, RetryAt)
    assert decision.reason == "pay_date"
    assert local(decision.when).date() == date(2026, 1, 15)
    assert 6 <= local(decision.when).hour < 10


def test_a_pay_date_on_a_weekend_moves_back_to_friday() -> None:
    # 15 March 2026 is a Sunday: payroll runs on Friday the 13th.
    failed_at = datetime(2026, 3, 11, 20, 0, tzinfo=UTC)
    _, decision = start(fail_with("insufficient_funds"), failed_at)
    assert isinstance(decision, RetryAt)
    assert local(decision.when).date() == date(2026, 3, 13)


@pytest.mark.parametrize("rand", [0.0, 0.4, 0.999])
def test_insufficient_funds_without_a_pay_date_nearby_lands_in_the_local_morning(
    rand: float,
) -> None:
    # Monday 5 January 2026 16:00 UTC: no pay date between 3 and 8 January.
    failed_at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    _, decision = start(fail_with("insufficient_funds"), failed_at, rand=rand, offset=540)
    assert isinstance(decision, RetryAt)
    assert decision.reason == "local_morning"
    assert 6 <= local(decision.when, 540).hour < 10
    assert decision.when - failed_at < timedelta(hours=36)


def test_other_soft_declines_use_plain_jittered_backoff() -> None:
    failed_at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    delays = set()
    for rand in (0.0, 0.5, 0.999):
        _, decision = start(fail_with("do_not_honor"), failed_at, rand=rand)
        assert isinstance(decision, RetryAt) and decision.reason == "backoff"
        delays.add(decision.when - failed_at)
    # first delay 12 h, jitter +-20 %
    assert min(delays) >= timedelta(hours=12 * 0.8) and max(delays) <= timedelta(hours=12 * 1.2)
    assert len(delays) == 3


def test_backoff_grows_and_retries_stop_at_the_policy_count() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("do_not_honor"), at)
    times = [at]
    while isinstance(decision, RetryAt):
        times.append(decision.when)
        state, decision = retry_and_fail(state, decision, fail_with("do_not_honor"))
    assert isinstance(decision, Stop) and decision.reason == "retries_exhausted"
    assert state.scheduled_retries == STANDARD.max_retries == len(times) - 1
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] < gaps[1] < gaps[2]
    assert times[-1] <= at + timedelta(days=14)


# --- issuer outage: sooner ---------------------------------------------------------------


@pytest.mark.parametrize("code", ["processing_error", "issuer_not_available", "try_again_later"])
def test_issuer_outage_retries_within_one_to_three_hours(code: str) -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    for rand in (0.0, 0.5, 0.999):
        _, decision = start(fail_with(code), at, rand=rand)
        assert isinstance(decision, RetryAt) and decision.reason == "issuer_outage"
        assert timedelta(hours=1) <= decision.when - at <= timedelta(hours=3)


# --- the customer must act ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("decline", "reason"),
    [
        (fail_with("expired_card"), "fix_data"),
        (fail_with("incorrect_cvc"), "fix_data"),
        (DeclineInfo(code="authentication_required"), "authentication_required"),
        (fail_with("do_not_honor", network_decline_code="1A"), "authentication_required"),
    ],
)
def test_fix_data_and_authentication_wait_for_the_customer_until_the_window_ends(
    decline: DeclineInfo, reason: str
) -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(decline, at)
    assert decision == WaitForCustomer(reason, at + timedelta(days=14))
    # An early (stale) timer changes nothing; the deadline ends dunning per policy.
    assert decide(state, TimerFired(at + timedelta(days=1)), at + timedelta(days=1), 0.1) == (
        state,
        decision,
    )
    deadline = decision.deadline
    _, end = decide(state, TimerFired(deadline), deadline, 0.1)
    assert end == Stop(
        EndAction.CANCEL, InvoiceEndAction.LEAVE_OPEN, "customer_did_not_act", deadline
    )


def test_updated_card_after_an_expired_card_retries_at_once_then_resumes_the_schedule() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("expired_card"), at)
    later = at + timedelta(days=2)
    state, decision = decide(state, PaymentMethodUpdated(NEW_VISA, later), later, 0.5)
    assert decision == RetryNow("payment_method_updated")
    state, decision = decide(state, AttemptFailed(later, fail_with("do_not_honor")), later, 0.5)
    assert isinstance(decision, RetryAt) and decision.reason == "backoff"
    assert state.scheduled_retries == 0 and state.immediate_retries == 1
    assert state.card == NEW_VISA


# --- hard declines -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("card", "decline"),
    [
        (VISA, fail_with("lost_card")),
        (VISA, fail_with("stolen_card")),
        (VISA, fail_with("revocation_of_authorization")),
        (VISA, fail_with("do_not_honor", network_decline_code="R1")),
        (VISA, fail_with("generic_decline", network_decline_code="04")),
        (MASTERCARD, fail_with("do_not_honor", network_advice_code="03")),
        (MASTERCARD, fail_with("insufficient_funds", network_advice_code="21")),
    ],
)
def test_hard_declines_stop_with_the_policy_end_actions_and_never_retry(
    card: CardRef, decline: DeclineInfo
) -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(decline, at, card=card)
    grace_end = at + timedelta(hours=STANDARD.grace_period_hours)
    assert decision == Stop(
        EndAction.CANCEL, InvoiceEndAction.LEAVE_OPEN, "hard_decline", grace_end
    )
    assert state.access_until == grace_end
    for event in (OpsRetryNow(at), PaymentMethodUpdated(card, at), TimerFired(at), OpsResume(at)):
        assert decide(state, event, at, 0.3)[1] == decision


def test_a_policy_that_revokes_at_the_end_action_revokes_at_once() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    policy = load_policy("self_serve_short", 1)
    _, decision = start(fail_with("fraudulent"), at, policy=policy)
    assert decision == Stop(
        EndAction.MARK_UNPAID, InvoiceEndAction.MARK_UNCOLLECTIBLE, "hard_decline", at
    )


def test_mastercard_stop_advice_is_enforced_even_when_the_gateway_calls_it_soft() -> None:
    # MAC 03 arrives with a Mastercard brand on the card only (not on the decline).
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    _, decision = start(
        DeclineInfo(code="card_declined", network_advice_code="03"), at, card=MASTERCARD
    )
    assert isinstance(decision, Stop) and decision.reason == "hard_decline"


# --- immediate retries -------------------------------------------------------------------


def test_new_payment_method_gives_exactly_one_immediate_retry_then_the_schedule_continues() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, scheduled = start(fail_with("do_not_honor"), at)
    state, scheduled = retry_and_fail(state, scheduled, fail_with("do_not_honor"))
    assert isinstance(scheduled, RetryAt) and state.scheduled_retries == 1
    now = at + timedelta(hours=30)
    state, decision = decide(state, PaymentMethodUpdated(NEW_VISA, now), now, 0.5)
    assert decision == RetryNow("payment_method_updated")
    # A second update while the charge is in flight is owed one retry, not two.
    state, decision = decide(state, CardUpdaterEvent(now), now, 0.5)
    assert decision == AwaitingOutcome("payment_method_updated")
    state, decision = decide(state, OpsRetryNow(now), now, 0.5)
    assert decision == AwaitingOutcome("payment_method_updated")
    state, decision = decide(state, AttemptFailed(now, fail_with("do_not_honor")), now, 0.5)
    assert decision == RetryNow("card_updater")
    state, decision = decide(state, AttemptFailed(now, fail_with("do_not_honor")), now, 0.5)
    assert isinstance(decision, RetryAt) and decision.reason == "backoff"
    assert decision.when >= now + timedelta(hours=12 * 1.5 * 0.8)  # second backoff step
    assert state.scheduled_retries == 1 and state.immediate_retries == 2
    assert [a.trigger.value for a in state.attempts] == [
        "initial_attempt",
        "scheduled_retry",
        "payment_method_updated",
        "card_updater",
    ]


def test_immediate_retries_are_capped_per_invoice() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("do_not_honor"), at)
    retries = 0
    for minute in range(STANDARD.max_immediate_retries + 3):
        now = at + timedelta(minutes=10 * (minute + 1))
        state, decision = decide(state, CardUpdaterEvent(now), now, 0.5)
        if isinstance(decision, RetryNow):
            retries += 1
            state, decision = decide(state, AttemptFailed(now, fail_with("do_not_honor")), now, 0.5)
    assert retries == STANDARD.max_immediate_retries
    assert isinstance(decision, RetryAt)


def test_successful_immediate_retry_recovers() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, _ = start(fail_with("insufficient_funds"), at)
    now = at + timedelta(hours=3)
    state, decision = decide(state, PaymentMethodUpdated(NEW_VISA, now), now, 0.5)
    state, decision = decide(state, AttemptSucceeded(now), now, 0.5)
    assert decision == Recovered(now)
    assert state.phase is Phase.RECOVERED
    assert decide(state, OpsRetryNow(now), now, 0.5)[1] == decision


# --- Mastercard merchant advice codes ------------------------------------------------------


@pytest.mark.parametrize(
    ("mac", "wait"),
    [
        ("24", timedelta(hours=1)),
        ("25", timedelta(hours=24)),
        ("26", timedelta(days=2)),
        ("27", timedelta(days=4)),
        ("28", timedelta(days=6)),
        ("29", timedelta(days=8)),
        ("30", timedelta(days=10)),
    ],
)
def test_mastercard_retry_after_advice_sets_the_earliest_next_attempt(
    mac: str, wait: timedelta
) -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("do_not_honor", network_advice_code=mac), at, card=MASTERCARD)
    assert isinstance(decision, RetryAt) and decision.when >= at + wait
    # Even a card update on the same card waits for the advice to run out.
    soon = at + timedelta(minutes=30)
    _, immediate = decide(state, PaymentMethodUpdated(MASTERCARD, soon), soon, 0.5)
    if wait > timedelta(minutes=30):
        assert immediate == RetryAt(at + wait, "payment_method_updated")
    # A different card is not bound by this card's advice.
    _, other = decide(state, PaymentMethodUpdated(NEW_VISA, soon), soon, 0.5)
    assert other == RetryNow("payment_method_updated")


def test_advice_beyond_the_window_ends_dunning_on_the_network_cap() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    short = load_policy("self_serve_short", 1)  # 7-day window
    _, decision = start(
        fail_with("do_not_honor", network_advice_code="29"), at, card=MASTERCARD, policy=short
    )
    assert isinstance(decision, Stop) and decision.reason == "network_cap"


@pytest.mark.parametrize("window_days", [14, 60])
def test_visa_fifteen_attempts_in_thirty_days_blocks_the_sixteenth(window_days: int) -> None:
    policy = replace(STANDARD, max_immediate_retries=50, window_hours=24 * window_days)
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("do_not_honor"), at, policy=policy)
    now = at
    for _ in range(14):
        now += timedelta(minutes=5)
        state, decision = decide(state, OpsRetryNow(now), now, 0.5)
        assert decision == RetryNow("ops_retry")
        state, decision = decide(state, AttemptFailed(now, fail_with("do_not_honor")), now, 0.5)
    assert len(state.attempts) == 15
    if window_days == 14:
        # The card is quiet until the first attempt leaves the 30-day window, past the
        # policy window: dunning ends on the network cap.
        assert isinstance(decision, Stop) and decision.reason == "network_cap"
        return
    assert decision == RetryAt(at + timedelta(days=30), "network_delay")
    later = now + timedelta(days=1)
    # An ops retry cannot jump the cap: it waits for the same instant.
    assert decide(state, OpsRetryNow(later), later, 0.5)[1] == RetryAt(decision.when, "ops_retry")
    # A new card has its own count.
    _, other = decide(state, PaymentMethodUpdated(NEW_VISA, later), later, 0.5)
    assert other == RetryNow("payment_method_updated")


# --- cancellation, ops, grace -----------------------------------------------------------


def test_cancellation_pauses_until_grace_ends_then_cancels() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, _ = start(fail_with("insufficient_funds"), at)
    now = at + timedelta(days=1)
    state, decision = decide(state, CustomerCancelled(now), now, 0.5)
    grace_end = at + timedelta(hours=STANDARD.grace_period_hours)
    assert decision == Paused("customer_cancelled", grace_end)
    for event in (
        PaymentMethodUpdated(NEW_VISA, now),
        CardUpdaterEvent(now),
        OpsRetryNow(now),
        OpsResume(now),
        TimerFired(now),
    ):
        assert decide(state, event, now, 0.5)[1] == decision
    _, end = decide(state, TimerFired(grace_end), grace_end, 0.5)
    assert end == Stop(
        EndAction.CANCEL, InvoiceEndAction.LEAVE_OPEN, "customer_cancelled", grace_end
    )


def test_cancellation_after_the_grace_period_stops_at_once() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, _ = start(fail_with("do_not_honor"), at)
    now = at + timedelta(days=9)
    _, decision = decide(state, CustomerCancelled(now), now, 0.5)
    assert decision == Stop(
        EndAction.CANCEL, InvoiceEndAction.LEAVE_OPEN, "customer_cancelled", now
    )


def test_cancellation_during_a_charge_waits_for_its_outcome_and_never_retries() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("do_not_honor"), at)
    when = decision.when
    state, decision = fire(state, decision)
    assert decision == RetryNow("scheduled_retry")
    state, decision = decide(state, CustomerCancelled(when), when, 0.5)
    assert isinstance(decision, Paused)
    state, decision = decide(state, AttemptFailed(when, fail_with("insufficient_funds")), when, 0.5)
    assert isinstance(decision, Paused)
    # ...but a charge already in flight that succeeds still recovers the invoice.
    state2, _ = fire(*start(fail_with("do_not_honor"), at))
    state2, _ = decide(state2, CustomerCancelled(when), when, 0.5)
    assert decide(state2, AttemptSucceeded(when), when, 0.5)[1] == Recovered(when)


def test_ops_pause_resume_and_end() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    state, decision = start(fail_with("do_not_honor"), at)
    now = at + timedelta(hours=1)
    state, paused = decide(state, OpsPause(now), now, 0.5)
    assert paused == Paused("ops_pause", None)
    assert decide(state, TimerFired(decision.when), decision.when, 0.5)[1] == paused
    assert decide(state, OpsRetryNow(now), now, 0.5)[1] == paused
    # A card update while paused is remembered and retried on resume.
    state, _ = decide(state, PaymentMethodUpdated(NEW_VISA, now), now, 0.5)
    later = now + timedelta(hours=2)
    resumed_state, resumed = decide(state, OpsResume(later), later, 0.5)
    assert resumed == RetryNow("payment_method_updated")
    _, ended = decide(
        resumed_state,
        OpsEnd(later, EndAction.LEAVE_PAST_DUE, InvoiceEndAction.VOID_VIA_CREDIT_NOTE),
        later,
        0.5,
    )
    assert ended == Stop(
        EndAction.LEAVE_PAST_DUE,
        InvoiceEndAction.VOID_VIA_CREDIT_NOTE,
        "ops_ended",
        at + timedelta(hours=STANDARD.grace_period_hours),
    )


def test_started_without_a_decline_charges_first() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    started = Started("in_9", 990, "EUR", VISA, 60, at, STANDARD)
    state, decision = decide(None, started, at, 0.2)
    assert decision == RetryNow("initial_attempt")
    assert state.access_until is None
    assert decide(state, started, at, 0.2)[1] == AwaitingOutcome("initial_attempt")
    state, decision = decide(state, AttemptFailed(at, fail_with("do_not_honor")), at, 0.2)
    assert isinstance(decision, RetryAt)
    assert state.access_until == at + timedelta(days=7)


def test_inputs_are_checked() -> None:
    at = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="rand"):
        start(fail_with("do_not_honor"), at, rand=1.0)
    with pytest.raises(ValueError, match="aware"):
        decide(None, Started("i", 1, "USD", VISA, 0, at, STANDARD), at.replace(tzinfo=None), 0.1)
    with pytest.raises(ValueError, match="not started"):
        decide(None, TimerFired(at), at, 0.1)
