"""A scripted stand-in for the dunning workflow: it feeds events to ``decide`` the way
the workflow does (charge on RetryNow, timers on RetryAt / WaitForCustomer / Paused)
and records every charge it makes, so tests can re-count them against network rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    AttemptSucceeded,
    AwaitingOutcome,
    CancellationUndone,
    CardRef,
    CardUpdaterEvent,
    CustomerCancelled,
    Decision,
    DunningEvent,
    DunningState,
    OpsEnd,
    OpsPause,
    OpsResume,
    OpsRetryNow,
    Paused,
    PaymentMethodUpdated,
    Policy,
    RetryAt,
    RetryNow,
    Started,
    TimerFired,
    WaitForCustomer,
    decide,
)

CARDS = (
    CardRef("fp_visa_1", "visa"),
    CardRef("fp_mc_1", "mastercard"),
    CardRef("fp_amex_1", "amex"),
    CardRef("fp_visa_2", "visa"),
)

# Soft declines first: a script picks from these most of the time so runs last long
# enough to meet the caps.
SOFT_DECLINES = (
    DeclineInfo(decline_code="insufficient_funds"),
    DeclineInfo(decline_code="insufficient_funds", network_decline_code="51"),
    DeclineInfo(decline_code="do_not_honor", network_decline_code="05"),
    DeclineInfo(decline_code="generic_decline"),
    DeclineInfo(decline_code="processing_error"),
    DeclineInfo(decline_code="issuer_not_available"),
    DeclineInfo(decline_code="try_again_later", network_advice_code="02"),
    *(DeclineInfo(decline_code="do_not_honor", network_advice_code=str(m)) for m in range(24, 31)),
    DeclineInfo(decline_code="insufficient_funds", network_advice_code="24"),
)
DECLINES = (
    *SOFT_DECLINES,
    DeclineInfo(decline_code="expired_card", network_decline_code="54"),
    DeclineInfo(decline_code="incorrect_cvc"),
    DeclineInfo(code="authentication_required", decline_code="authentication_required"),
    DeclineInfo(decline_code="lost_card", network_decline_code="41"),
    DeclineInfo(decline_code="generic_decline", network_decline_code="R1"),
    DeclineInfo(decline_code="do_not_honor", network_advice_code="03"),
    DeclineInfo(decline_code="do_not_honor", network_advice_code="21"),
)


def pick_decline(choice: int) -> DeclineInfo:
    if choice % 10 < 8:
        return SOFT_DECLINES[(choice // 10) % len(SOFT_DECLINES)]
    return DECLINES[(choice // 10) % len(DECLINES)]


START = datetime(2026, 1, 20, 15, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Step:
    """One scripted choice. ``action`` picks what happens next, ``decline`` which decline
    a failure carries, ``minutes`` how long until the next event, ``rand`` the jitter."""

    action: int
    decline: int
    minutes: int
    rand: float


@dataclass(frozen=True)
class Charge:
    decided_at: datetime  # the RetryNow decision
    at: datetime  # the outcome
    card: CardRef
    reason: str
    decline: DeclineInfo | None  # None: succeeded


@dataclass
class Run:
    decisions: list[tuple[datetime, DunningEvent, Decision]] = field(default_factory=list)
    charges: list[Charge] = field(default_factory=list)
    states: list[DunningState] = field(default_factory=list)
    cancelled_at: datetime | None = None
    card_events: int = 0  # payment-method updates, card-updater events and ops retries fed


def run_script(
    policy: Policy,
    first_card: CardRef,
    first: int,
    script: list[Step],
    cancel_at_step: int | None = None,
    undo_at_step: int | None = None,
) -> Run:
    run = Run()
    now = START
    event: DunningEvent = Started(
        "in_prop", 4200, "USD", first_card, -300, now, policy, pick_decline(first)
    )
    run.charges.append(Charge(now, now, first_card, "initial", pick_decline(first)))
    state, decision = decide(None, event, now, 0.5)
    run.decisions.append((now, event, decision))
    run.states.append(state)
    in_flight: CardRef | None = None
    decided_at = now
    for index, step in enumerate(script):
        if state.finished:
            break
        if isinstance(decision, RetryNow):
            in_flight, decided_at = state.card, now
        if index == cancel_at_step:
            event = CustomerCancelled(now)
        elif index == undo_at_step:
            event = CancellationUndone(now)
        else:
            event, now = _next_event(step, decision, state, now, in_flight)
        if isinstance(event, (AttemptFailed, AttemptSucceeded)):
            assert in_flight is not None
            decline = event.info if isinstance(event, AttemptFailed) else None
            run.charges.append(Charge(decided_at, now, in_flight, str(state.in_flight), decline))
            in_flight = None
        if isinstance(event, CustomerCancelled) and run.cancelled_at is None:
            run.cancelled_at = now
        if isinstance(event, (PaymentMethodUpdated, CardUpdaterEvent, OpsRetryNow)):
            run.card_events += 1
        state, decision = decide(state, event, now, step.rand)
        run.decisions.append((now, event, decision))
        run.states.append(state)
    return run


def _next_event(
    step: Step, decision: Decision, state: DunningState, now: datetime, in_flight: CardRef | None
) -> tuple[DunningEvent, datetime]:
    later = now + timedelta(minutes=step.minutes)
    if in_flight is not None and (
        isinstance(decision, (RetryNow, AwaitingOutcome)) or step.action % 5 != 0
    ):
        # The charge's outcome, unless (one time in five) another event lands mid-flight.
        if isinstance(decision, (RetryNow, AwaitingOutcome)) and step.action % 7 == 0:
            return _interrupt(step, state, now), now
        outcome_at = now + timedelta(seconds=step.minutes % 30)
        if step.action % 23 == 1:
            return AttemptSucceeded(outcome_at), outcome_at
        return AttemptFailed(outcome_at, pick_decline(step.decline)), outcome_at
    due = _due(decision)
    waiting = isinstance(decision, WaitForCustomer) or state.cancelled_at is not None
    if due is not None and step.action % 10 < (2 if waiting else 6):
        fire_at = max(due, now) + timedelta(minutes=step.minutes % 3)
        return TimerFired(fire_at), fire_at
    if due is not None:
        later = min(later, due)
    return _interrupt(step, state, later), later


def _due(decision: Decision) -> datetime | None:
    if isinstance(decision, RetryAt):
        return decision.when
    if isinstance(decision, WaitForCustomer):
        return decision.deadline
    if isinstance(decision, Paused):
        return decision.until
    return None


def _interrupt(step: Step, state: DunningState, at: datetime) -> DunningEvent:
    choice = (step.action // 10) % 100
    if choice < 40:
        same = step.decline % 2 == 0
        return PaymentMethodUpdated(state.card if same else CARDS[step.decline % len(CARDS)], at)
    if choice < 55:
        return CardUpdaterEvent(at)
    if choice < 65:
        return OpsRetryNow(at)
    if choice < 70:
        return OpsPause(at)
    if choice < 80:
        return OpsResume(at)
    if choice < 82:
        return CustomerCancelled(at)
    if choice < 83:
        return OpsEnd(at)
    if choice < 85:
        return CancellationUndone(at)  # without a cancellation before it: changes nothing
    return TimerFired(at)  # early or stale: must change nothing
