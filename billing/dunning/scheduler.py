"""The dunning state machine: ``decide(state, event, now, rand)`` returns the next state
and the one thing the workflow must do next. Pure and deterministic: no clock, no global
RNG, no I/O; randomness is the caller's ``rand`` in [0, 1).

Rules it keeps, in order of precedence:

1. Cancellation wins: after ``CustomerCancelled`` no retry is ever decided again.
2. Network rules (``network_rules.json``): a hard decline, a Visa Category 1 code or a
   Mastercard MAC 03/21 blocks the card for good; MAC 24-30 delays the card's next
   attempt; rolling caps per card (Visa 15 / 30 days; Mastercard 10 / 24 h and
   35 / 30 days) hold for every attempt, immediate ones included.
3. The policy: at most ``max_retries`` scheduled retries, every attempt of any kind no
   later than ``window_end`` (first failure + window).
4. Immediate retries: each payment-method update, card-updater event or ops request
   yields exactly one retry (right away, or at the first instant the network allows),
   up to ``max_immediate_retries`` per invoice; they do not use up scheduled retries.

Since ``standard@v3`` (policy fields; earlier versions keep their behaviour):

5. A hard decline blocks the card, not the run: the run waits for a new payment method
   or a card-updater event until the window ends (``hard_decline_waits_for_new_card``).
6. Issuer-outage declines (family ``gateway_unavailable``) spend ``outage_budget``
   retries spaced with a widening delay; they never use up scheduled retries.
7. Background retries (scheduled, outage, card updater) happen in the customer's local
   daytime (``daytime_start_hour``..``daytime_end_hour``), moved to the next allowed
   instant with jitter; a new card from the customer and an ops retry run at once.

The workflow feeds one event at a time. Events that arrive while a charge is in flight
may be fed at once: the answer is ``AwaitingOutcome`` (or ``Paused``), a card update is
remembered and its one retry follows the outcome. Network caps are counted here over the
attempts this state has seen (one invoice); the card's attempts for every invoice are
checked by the card's attempt ledger before each charge, and a refusal comes back as
``AttemptRefused`` (not an attempt: the retry it spent is given back).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from billing.declines import DeclineFamily, classify_decline
from billing.dunning.decisions import (
    AwaitingOutcome,
    Decision,
    Paused,
    Recovered,
    RetryAt,
    RetryNow,
    Stop,
    WaitForCustomer,
)
from billing.dunning.events import (
    AttemptFailed,
    AttemptRefused,
    AttemptSucceeded,
    CancellationUndone,
    CardRef,
    CardUpdaterEvent,
    CustomerCancelled,
    DunningEvent,
    OpsEnd,
    OpsPause,
    OpsResume,
    OpsRetryNow,
    PaymentMethodUpdated,
    Started,
    TimerFired,
)
from billing.dunning.messages import customer_message
from billing.dunning.network_rules import (
    CardAttempt,
    earliest_allowed,
    forbids_retry,
    network_rules,
)
from billing.dunning.policy import EndAction, InvoiceEndAction, RevokeAccess
from billing.dunning.state import (
    BACKGROUND_TRIGGERS,
    IMMEDIATE_TRIGGERS,
    Attempt,
    DunningState,
    Ending,
    Phase,
    Trigger,
)
from billing.dunning.timing import (
    backoff_delay,
    has_daytime,
    last_daytime,
    lean_to_pay_date,
    next_daytime,
    outage_delay,
    outage_spacing,
    split_rand,
    third_rand,
)

Step = tuple[DunningState, Decision]

CANCELLED = "customer_cancelled"
OPS_PAUSE = "ops_pause"
HARD_DECLINE = "hard_decline"
NETWORK_CAP = "network_cap"
ISSUER_OUTAGE = "issuer_outage"


def decide(state: DunningState | None, event: DunningEvent, now: datetime, rand: float) -> Step:
    """The next state and decision. ``state`` is None only for the ``Started`` event."""
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    split_rand(rand)  # refuses a value outside [0, 1)
    if isinstance(event, Started):
        return standing(state) if state is not None else _start(event, now, rand)
    if state is None:
        raise ValueError(f"dunning has not started; got {type(event).__name__}")
    if state.finished:
        return standing(state)
    match event:
        case AttemptSucceeded():
            return _succeeded(state, event)
        case AttemptFailed():
            return _failed(state, event, now, rand)
        case AttemptRefused():
            return _refused(state, event, now, rand)
        case PaymentMethodUpdated():
            return _card_event(state, event.card, Trigger.PAYMENT_METHOD_UPDATED, now, rand)
        case CardUpdaterEvent():
            return _card_event(state, event.card or state.card, Trigger.CARD_UPDATER, now, rand)
        case OpsRetryNow():
            return _ops_retry(state, now, rand)
        case CustomerCancelled():
            return _cancelled(state, event, now)
        case CancellationUndone():
            return _cancellation_undone(state, now, rand)
        case OpsPause():
            return _ops_pause(state)
        case OpsResume():
            return _ops_resume(state, now, rand)
        case OpsEnd():
            return _stop(state, now, "ops_ended", event.action, event.invoice_action)
        case TimerFired():
            return _timer(state, now, rand)
    raise TypeError(f"unknown dunning event {event!r}")


def standing(state: DunningState) -> Step:
    """The decision the state already stands on (for stale timers and repeated events)."""
    match state.phase:
        case Phase.ATTEMPTING:
            return state, AwaitingOutcome(str(state.in_flight))
        case Phase.SCHEDULED:
            assert state.due_at is not None and state.due_reason is not None
            return state, RetryAt(state.due_at, state.due_reason)
        case Phase.WAITING_FOR_CUSTOMER:
            assert state.due_at is not None and state.due_reason is not None
            return state, WaitForCustomer(state.due_reason, state.due_at)
        case Phase.PAUSED:
            return state, Paused(state.due_reason or OPS_PAUSE, state.due_at)
        case Phase.RECOVERED:
            assert state.recovered_at is not None
            return state, Recovered(state.recovered_at)
        case Phase.STOPPED:
            ending = state.ending
            assert ending is not None
            return state, Stop(
                ending.end_action, ending.invoice_end_action, ending.reason, ending.revoke_access_at
            )
    raise AssertionError(f"unknown phase {state.phase}")  # pragma: no cover


def _start(event: Started, now: datetime, rand: float) -> Step:
    state = DunningState(
        invoice_id=event.invoice_id,
        amount=event.amount,
        currency=event.currency,
        policy=event.policy,
        card=event.card,
        utc_offset_minutes=event.utc_offset_minutes,
        started_at=event.started_at,
        phase=Phase.ATTEMPTING,
        in_flight=Trigger.INITIAL,
        in_flight_card=event.card,
    )
    if event.first_decline is None:
        return state, RetryNow(Trigger.INITIAL.value)
    return _failed(state, AttemptFailed(event.started_at, event.first_decline), now, rand)


def _succeeded(state: DunningState, event: AttemptSucceeded) -> Step:
    attempt = Attempt(
        at=event.at,
        card=state.in_flight_card or state.card,
        trigger=state.in_flight or Trigger.OUTSIDE,
        succeeded=True,
    )
    state = replace(
        state,
        phase=Phase.RECOVERED,
        attempts=(*state.attempts, attempt),
        in_flight=None,
        in_flight_card=None,
        due_at=None,
        recovered_at=event.at,
    )
    return standing(state)


def _failed(state: DunningState, event: AttemptFailed, now: datetime, rand: float) -> Step:
    card = event.card or state.in_flight_card or state.card
    info = event.info if event.info.card_brand else replace(event.info, card_brand=card.brand)
    classification = classify_decline(info)
    hard = classification.family is DeclineFamily.HARD or forbids_retry(
        network_rules().for_brand(card.brand),
        CardAttempt(event.at, info.network_decline_code, info.network_advice_code),
    )
    attempt = Attempt(
        at=event.at,
        card=card,
        trigger=state.in_flight or Trigger.OUTSIDE,
        succeeded=False,
        family=DeclineFamily.HARD if hard else classification.family,
        reason=classification.reason,
        network_decline_code=info.network_decline_code,
        network_advice_code=info.network_advice_code,
        message=customer_message(classification, hard=hard),
    )
    blocked = state.blocked_cards
    if hard and card.fingerprint not in blocked:
        blocked = (*blocked, card.fingerprint)
    first_failure = min(filter(None, (state.first_failure_at, event.at)))
    state = replace(
        state,
        attempts=(*state.attempts, attempt),
        first_failure_at=first_failure,
        in_flight=None,
        in_flight_card=None,
        blocked_cards=blocked,
        last_family=attempt.family,
        last_reason=attempt.reason,
    )
    if state.phase is Phase.PAUSED:
        if state.cancelled_at is not None and state.due_at is not None and state.due_at <= now:
            return _stop_cancelled(state, now)
        return standing(state)
    return _plan(state, now, rand)


def _refused(state: DunningState, event: AttemptRefused, now: datetime, rand: float) -> Step:
    """The card ledger refused the charge: nothing reached the gateway, so the retry it
    spent is given back; a blocked card is blocked here too, a capped one waits."""
    trigger = state.in_flight
    if trigger is None:
        return standing(state)
    card = state.in_flight_card or state.card
    state = _give_back(replace(state, in_flight=None, in_flight_card=None), trigger)
    if event.not_before is None:
        if card.fingerprint not in state.blocked_cards:
            state = replace(state, blocked_cards=(*state.blocked_cards, card.fingerprint))
    if state.phase is Phase.PAUSED:
        if state.cancelled_at is not None and state.due_at is not None and state.due_at <= now:
            return _stop_cancelled(state, now)
        return standing(state)
    if event.not_before is None:
        return _plan(state, now, rand)
    due = max(event.not_before, now)
    if trigger in BACKGROUND_TRIGGERS or trigger is Trigger.INITIAL:
        due = _in_daytime(state, due, rand)
    if due > state.window_end:
        return _stop(state, now, "network_cap")
    if trigger in IMMEDIATE_TRIGGERS:
        reason = trigger.value
    else:
        reason = ISSUER_OUTAGE if trigger is Trigger.OUTAGE else NETWORK_CAP
    state = replace(state, phase=Phase.SCHEDULED, due_at=due, due_reason=reason)
    return standing(state)


def _give_back(state: DunningState, trigger: Trigger) -> DunningState:
    if trigger is Trigger.SCHEDULED:
        return replace(state, scheduled_retries=max(0, state.scheduled_retries - 1))
    if trigger is Trigger.OUTAGE:
        return replace(state, outage_retries=max(0, state.outage_retries - 1))
    return state  # an immediate retry stays owed: its timer retries without counting again


def _plan(state: DunningState, now: datetime, rand: float) -> Step:
    """Next step after a failure (or on resume): an owed immediate retry, else stop on a
    blocked card, wait for a customer-fixable decline, or schedule a retry."""
    if state.owed_immediate is not None:
        trigger = state.owed_immediate
        state = replace(state, owed_immediate=None)
        step = _try_immediate(state, now, trigger, rand)
        if step is not None:
            return step
    if now > state.window_end:
        return _stop(state, now, "window_elapsed")
    if state.card.fingerprint in state.blocked_cards:
        if state.policy.hard_decline_waits_for_new_card:
            return _wait(state, now, HARD_DECLINE)
        return _stop(state, now, HARD_DECLINE)
    if state.last_family in (DeclineFamily.FIX_DATA, DeclineFamily.AUTHENTICATION_REQUIRED):
        assert state.last_family is not None
        return _wait(state, now, state.last_family.value)
    return _schedule(state, now, rand)


def _wait(state: DunningState, now: datetime, reason: str) -> Step:
    deadline = state.window_end
    if deadline <= now:
        return _stop(state, now, "customer_did_not_act")
    state = replace(state, phase=Phase.WAITING_FOR_CUSTOMER, due_at=deadline, due_reason=reason)
    return standing(state)


def _last_attempt_at(state: DunningState) -> datetime | None:
    return max((a.at for a in state.attempts), default=None)


def _network_earliest(state: DunningState, card: CardRef, not_before: datetime) -> datetime | None:
    history = [
        CardAttempt(a.at, a.network_decline_code, a.network_advice_code)
        for a in state.attempts_on(card)
    ]
    if card.fingerprint in state.blocked_cards:
        return None
    return earliest_allowed(network_rules().for_brand(card.brand), history, not_before)


def _schedule(state: DunningState, now: datetime, rand: float) -> Step:
    policy = state.policy
    outage = state.outage_budget_left
    if not outage and state.scheduled_retries >= policy.max_retries:
        return _stop(state, now, "retries_exhausted")
    jitter_rand, minute_rand = split_rand(rand)
    last_at = _last_attempt_at(state) or now
    lower = max(now, last_at + timedelta(minutes=policy.min_gap_minutes))
    earliest = _network_earliest(state, state.card, lower)
    if earliest is None:
        return _stop(state, now, HARD_DECLINE)
    if earliest > state.window_end:
        return _stop(state, now, "network_cap" if earliest > lower else "window_elapsed")
    if outage:
        delay = outage_spacing(policy, state.outage_retries, jitter_rand)
        target, reason = last_at + delay, ISSUER_OUTAGE
    elif state.last_family is DeclineFamily.GATEWAY_UNAVAILABLE:
        target, reason = last_at + outage_delay(policy, jitter_rand), ISSUER_OUTAGE
    else:
        delay = backoff_delay(policy, state.scheduled_retries, jitter_rand)
        target, reason = last_at + delay, "backoff"
    if target < earliest:
        pushed = earliest > lower and not outage
        target, reason = earliest, ("network_delay" if pushed else reason)
    if state.last_reason == "insufficient_funds":
        target, reason = lean_to_pay_date(
            policy, target, earliest, state.window_end, state.utc_offset_minutes, minute_rand
        )
    target = _in_daytime(state, target, rand)
    if target > state.window_end:
        target, reason = _last_chance(state), "window_end"
        if target < earliest:
            return _stop(state, now, "window_elapsed")
    state = replace(state, phase=Phase.SCHEDULED, due_at=target, due_reason=reason)
    return standing(state)


def _in_daytime(state: DunningState, instant: datetime, rand: float) -> datetime:
    return next_daytime(state.policy, instant, state.utc_offset_minutes, third_rand(rand))


def _last_chance(state: DunningState) -> datetime:
    """The last instant a background retry may happen: the window's end, in daytime."""
    return last_daytime(state.policy, state.window_end, state.utc_offset_minutes)


def _try_immediate(
    state: DunningState, now: datetime, trigger: Trigger, rand: float
) -> Step | None:
    """One retry for one event, as soon as the network allows (and, for a background
    trigger, the daytime window); None when not possible."""
    if state.immediate_retries >= state.policy.max_immediate_retries:
        return None
    lower = max(now, _last_attempt_at(state) or now)
    earliest = _network_earliest(state, state.card, lower)
    if earliest is None or earliest > state.window_end:
        return None
    if trigger in BACKGROUND_TRIGGERS and has_daytime(state.policy):
        earliest = _in_daytime(state, earliest, rand)
        if earliest > state.window_end:
            earliest = _last_chance(state)
            if earliest < lower:
                return None
    state = replace(state, immediate_retries=state.immediate_retries + 1)
    if earliest <= now:
        return _attempt_now(state, trigger)
    state = replace(state, phase=Phase.SCHEDULED, due_at=earliest, due_reason=trigger.value)
    return standing(state)


def _attempt_now(state: DunningState, trigger: Trigger) -> Step:
    state = replace(
        state,
        phase=Phase.ATTEMPTING,
        in_flight=trigger,
        in_flight_card=state.card,
        due_at=None,
        due_reason=None,
    )
    return state, RetryNow(trigger.value)


def _card_event(
    state: DunningState, card: CardRef, trigger: Trigger, now: datetime, rand: float
) -> Step:
    state = replace(state, card=card)
    if state.cancelled_at is not None:
        return standing(state)
    if state.in_flight is not None or state.paused_by_ops:
        return standing(replace(state, owed_immediate=trigger))
    return _try_immediate(state, now, trigger, rand) or standing(state)


def _ops_retry(state: DunningState, now: datetime, rand: float) -> Step:
    if state.cancelled_at is not None or state.paused_by_ops or state.in_flight is not None:
        return standing(state)
    if now > state.window_end or state.card.fingerprint in state.blocked_cards:
        return standing(state)
    return _try_immediate(state, now, Trigger.OPS, rand) or standing(state)


def _cancelled(state: DunningState, event: CustomerCancelled, now: datetime) -> Step:
    if state.cancelled_at is not None:
        return standing(state)
    deadline = max(state.access_until or now, now)
    state = replace(
        state,
        phase=Phase.PAUSED,
        cancelled_at=event.at,
        paused_by_ops=False,
        owed_immediate=None,
        due_at=deadline,
        due_reason=CANCELLED,
    )
    if deadline <= now and state.in_flight is None:
        return _stop_cancelled(state, now)
    return standing(state)


def _cancellation_undone(state: DunningState, now: datetime, rand: float) -> Step:
    """Back to dunning as if the cancel had been an ops pause that is now resumed: a
    charge still in flight reports first, otherwise the plan is made afresh (the window,
    blocked cards and network caps all still apply)."""
    if state.cancelled_at is None:
        return standing(state)
    return _resume(replace(state, cancelled_at=None), now, rand)


def _ops_pause(state: DunningState) -> Step:
    if state.cancelled_at is not None or state.paused_by_ops:
        return standing(state)
    state = replace(
        state, phase=Phase.PAUSED, paused_by_ops=True, due_at=None, due_reason=OPS_PAUSE
    )
    return standing(state)


def _ops_resume(state: DunningState, now: datetime, rand: float) -> Step:
    if state.cancelled_at is not None or not state.paused_by_ops:
        return standing(state)
    return _resume(state, now, rand)


def _resume(state: DunningState, now: datetime, rand: float) -> Step:
    """Out of a pause: a charge in flight reports first, else the plan is made afresh."""
    state = replace(state, paused_by_ops=False, due_at=None, due_reason=None)
    if state.in_flight is not None:
        return standing(replace(state, phase=Phase.ATTEMPTING))
    return _plan(state, now, rand)


def _timer(state: DunningState, now: datetime, rand: float) -> Step:
    if state.due_at is None or now < state.due_at or state.in_flight is not None:
        return standing(state)
    if state.phase is Phase.WAITING_FOR_CUSTOMER:
        reason = HARD_DECLINE if state.due_reason == HARD_DECLINE else "customer_did_not_act"
        return _stop(state, now, reason)
    if state.phase is Phase.PAUSED:
        return _stop_cancelled(state, now) if state.cancelled_at is not None else standing(state)
    if state.phase is not Phase.SCHEDULED:
        return standing(state)
    if now > state.window_end:
        return _stop(state, now, "window_elapsed")
    immediate = next((t for t in IMMEDIATE_TRIGGERS if t.value == state.due_reason), None)
    outage = immediate is None and state.due_reason == ISSUER_OUTAGE and state.outage_budget_left
    trigger = immediate or (Trigger.OUTAGE if outage else Trigger.SCHEDULED)
    if trigger is Trigger.SCHEDULED and state.scheduled_retries >= state.policy.max_retries:
        return _stop(state, now, "retries_exhausted")
    earliest = _network_earliest(state, state.card, max(now, _last_attempt_at(state) or now))
    if earliest is None:
        return _stop(state, now, HARD_DECLINE)
    if earliest > now:
        if trigger in BACKGROUND_TRIGGERS:
            earliest = _in_daytime(state, earliest, rand)
        if earliest > state.window_end:
            return _stop(state, now, "network_cap")
        return standing(replace(state, due_at=earliest))
    if trigger is Trigger.SCHEDULED:
        state = replace(state, scheduled_retries=state.scheduled_retries + 1)
    elif trigger is Trigger.OUTAGE:
        state = replace(state, outage_retries=state.outage_retries + 1)
    return _attempt_now(state, trigger)


def _stop_cancelled(state: DunningState, now: datetime) -> Step:
    return _stop(state, now, CANCELLED, EndAction.CANCEL)


def _stop(
    state: DunningState,
    now: datetime,
    reason: str,
    end_action: EndAction | None = None,
    invoice_end_action: InvoiceEndAction | None = None,
) -> Step:
    policy = state.policy
    if policy.revoke_access is RevokeAccess.AT_END_ACTION:
        revoke_at = now
    else:
        revoke_at = max(state.access_until or now, now)
    ending = Ending(
        end_action=end_action or policy.end_action,
        invoice_end_action=invoice_end_action or policy.invoice_end_action,
        reason=reason,
        revoke_access_at=revoke_at,
    )
    state = replace(state, phase=Phase.STOPPED, due_at=None, due_reason=None, ending=ending)
    return standing(state)
