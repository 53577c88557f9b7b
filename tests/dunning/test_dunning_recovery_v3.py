"""standard@v3: a hard decline blocks the card, not the run; issuer outages spend their
own budget; background retries keep to the customer's local daytime. Each test also
pins what standard@v2 did, which runs already in dunning keep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.declines import DeclineInfo
from billing.dunning import (
    AttemptFailed,
    AttemptSucceeded,
    CardRef,
    CardUpdaterEvent,
    Decision,
    DunningEvent,
    DunningState,
    PaymentMethodUpdated,
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
from billing.dunning.network_rules import max_in_any_window
from billing.dunning.timing import in_daytime
from tests.dunning.dunning_driver import run_script
from tests.dunning.test_dunning_properties import POLICIES, scripts
from tests.support.mutation import examples

V2 = load_policy("standard", 2)
V3 = load_policy("standard", 3)
AT = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)  # a Tuesday, 15:00 for a UTC+1 customer
VISA = CardRef("fp_visa", "visa")
MASTERCARD = CardRef("fp_mc", "mastercard")
NEW_CARD = CardRef("fp_new", "visa")
LOST = DeclineInfo(decline_code="lost_card")
OUTAGE = DeclineInfo(decline_code="issuer_not_available")
BACKGROUND = {"scheduled_retry", "outage_retry", "card_updater"}


def _start(
    policy: Policy, decline: DeclineInfo, card: CardRef = VISA, offset: int = 60
) -> tuple[DunningState, Decision]:
    started = Started("in_v3", 4200, "EUR", card, offset, AT, policy, decline)
    return decide(None, started, AT, 0.5)


def test_a_hard_decline_waits_for_a_new_card_and_the_new_card_is_charged() -> None:
    state, decision = _start(V3, LOST)
    assert decision == WaitForCustomer("hard_decline", AT + V3.window)
    assert state.blocked_cards == (VISA.fingerprint,)
    day3 = AT + timedelta(days=3)
    state, decision = decide(state, PaymentMethodUpdated(NEW_CARD, day3), day3, 0.5)
    assert decision == RetryNow("payment_method_updated")
    state, decision = decide(state, AttemptSucceeded(day3), day3, 0.5)
    assert isinstance(decision, Recovered)


def test_standard_v2_still_ends_the_run_at_a_hard_decline() -> None:
    _, decision = _start(V2, LOST)
    assert isinstance(decision, Stop) and decision.reason == "hard_decline"


def test_after_a_hard_decline_the_window_end_stops_the_run_as_a_hard_decline() -> None:
    state, decision = _start(V3, LOST)
    end = AT + V3.window
    state, decision = decide(state, TimerFired(end), end, 0.5)
    assert isinstance(decision, Stop) and decision.reason == "hard_decline"


def test_a_card_updater_event_for_the_blocked_card_charges_nothing() -> None:
    state, _ = _start(V3, LOST)
    later = AT + timedelta(days=1)
    state, decision = decide(state, CardUpdaterEvent(later), later, 0.5)
    assert isinstance(decision, WaitForCustomer)


def test_a_new_card_that_fails_softly_is_retried_on_schedule() -> None:
    state, _ = _start(V3, LOST)
    day2 = AT + timedelta(days=2)
    state, _ = decide(state, PaymentMethodUpdated(NEW_CARD, day2), day2, 0.5)
    state, decision = decide(
        state, AttemptFailed(day2, DeclineInfo("card_declined", "do_not_honor")), day2, 0.5
    )
    assert isinstance(decision, RetryAt) and decision.reason == "backoff"
    assert state.card == NEW_CARD


def _run_outage(
    policy: Policy, hours: float, card: CardRef, offset: int, rand: float
) -> tuple[bool, list[datetime], list[tuple[str, datetime]]]:
    """Charges fail with issuer_not_available until the outage ends, then succeed."""
    outage_end = AT + timedelta(hours=hours)
    state, decision = _start(policy, OUTAGE, card, offset)
    charges = [AT]
    background: list[tuple[str, datetime]] = []
    now = AT
    for _ in range(200):
        if isinstance(decision, Recovered):
            return True, charges, background
        if isinstance(decision, Stop):
            return False, charges, background
        event: DunningEvent
        if isinstance(decision, RetryNow):
            charges.append(now)
            background.append((decision.reason, now))
            event = AttemptSucceeded(now) if now >= outage_end else AttemptFailed(now, OUTAGE)
        else:
            assert isinstance(decision, RetryAt | WaitForCustomer)
            now = decision.when if isinstance(decision, RetryAt) else decision.deadline
            event = TimerFired(now)
        state, decision = decide(state, event, now, rand)
    raise AssertionError("the run never ended")


def test_a_12_hour_outage_leaves_the_scheduled_retries_and_recovers() -> None:
    recovered, charges, _ = _run_outage(V3, 12, MASTERCARD, 60, 0.5)
    assert recovered
    assert max_in_any_window(charges, timedelta(hours=24)) <= 5


def test_standard_v2_spends_scheduled_retries_on_an_outage() -> None:
    # The defect v3 fixes: 1-3 h apart, each outage retry uses up a scheduled one, so a
    # long outage empties the run on its first day.
    recovered, charges, _ = _run_outage(V2, 36, MASTERCARD, 60, 0.5)
    assert not recovered
    assert charges[-1] - AT < timedelta(days=1)


@settings(max_examples=examples(150), deadline=None)
@given(
    hours=st.floats(0.0, 96.0),
    card=st.sampled_from([VISA, MASTERCARD]),
    offset=st.sampled_from([-480, -300, 0, 60, 330, 540, 780]),
    rand=st.floats(0.0, 1.0, exclude_max=True),
)
def test_an_outage_never_ends_a_run_early(
    hours: float, card: CardRef, offset: int, rand: float
) -> None:
    recovered, charges, background = _run_outage(V3, hours, card, offset, rand)
    assert recovered  # four days of outage still leave the scheduled retries
    assert max_in_any_window(charges, timedelta(hours=24)) <= 5  # Mastercard: 10
    for reason, at in background:
        assert reason in BACKGROUND
        assert in_daytime(V3, at, offset), (reason, at)


def test_a_card_updater_event_at_night_is_retried_in_the_morning() -> None:
    state, _ = _start(V3, DeclineInfo("card_declined", "expired_card"))
    night = datetime(2026, 3, 5, 1, 30, tzinfo=UTC)  # 02:30 local
    state, decision = decide(state, CardUpdaterEvent(night, NEW_CARD), night, 0.5)
    assert isinstance(decision, RetryAt) and decision.reason == "card_updater"
    assert in_daytime(V3, decision.when, 60)
    assert decision.when - night < timedelta(hours=10)
    # A new card the customer adds at night is charged at once: they are there.
    state, decision = decide(
        state, PaymentMethodUpdated(CardRef("fp_3", "visa"), night), night, 0.5
    )
    assert decision == RetryNow("payment_method_updated")


def test_standard_v2_retries_a_card_updater_event_at_night() -> None:
    state, _ = _start(V2, DeclineInfo("card_declined", "expired_card"))
    night = datetime(2026, 3, 5, 1, 30, tzinfo=UTC)
    _, decision = decide(state, CardUpdaterEvent(night, NEW_CARD), night, 0.5)
    assert decision == RetryNow("card_updater")


DAYTIME_POLICIES = [p for p in POLICIES if p.daytime_start_hour is not None]


def test_the_properties_cover_daytime_policies() -> None:
    assert {p.key for p in DAYTIME_POLICIES} >= {"standard@v3", "enterprise@v2"}


@settings(max_examples=examples(200), deadline=None)
@given(scripts)
def test_every_background_retry_is_planned_in_the_daytime_window(script) -> None:  # type: ignore[no-untyped-def]
    policy, card, first, plan = script
    if policy.daytime_start_hour is None:
        return
    run = run_script(policy, card, first, plan)
    for now, event, decision in run.decisions:
        if isinstance(decision, RetryAt) and decision.reason not in (
            "payment_method_updated",
            "ops_retry",
        ):
            assert in_daytime(policy, decision.when, -300), decision
        if isinstance(decision, RetryNow) and decision.reason in BACKGROUND:
            if not isinstance(event, TimerFired):
                assert in_daytime(policy, now, -300), decision
