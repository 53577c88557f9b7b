from datetime import UTC, datetime, timedelta

import pytest

from billing.lifecycle import (
    InvalidTransition,
    PortalAction,
    ReasonCode,
    SubscriptionSnapshot,
    SubscriptionStatus,
    TransitionRecord,
    Trigger,
    allowed_triggers,
    check_action,
    has_access,
    transition,
)
from billing.periods import NaiveDatetimeError

S, T, A = SubscriptionStatus, Trigger, PortalAction
AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# The lifecycle written out independently of billing.lifecycle.TRANSITIONS.
EXPECTED = {
    (S.INCOMPLETE, T.FIRST_PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.INCOMPLETE, T.FIRST_PAYMENT_FAILED_EXPIRED): S.INCOMPLETE_EXPIRED,
    (S.INCOMPLETE, T.TRIAL_STARTED): S.TRIALING,
    (S.INCOMPLETE, T.CANCELED_IMMEDIATELY): S.CANCELED,
    (S.TRIALING, T.TRIAL_ENDED_PAID): S.ACTIVE,
    (S.TRIALING, T.TRIAL_ENDED_UNPAID): S.PAST_DUE,
    (S.TRIALING, T.PERIOD_ENDED_CANCEL): S.CANCELED,
    (S.TRIALING, T.CANCELED_IMMEDIATELY): S.CANCELED,
    (S.ACTIVE, T.RENEWAL_PAID): S.ACTIVE,
    (S.ACTIVE, T.RENEWAL_FAILED): S.PAST_DUE,
    (S.ACTIVE, T.PERIOD_ENDED_CANCEL): S.CANCELED,
    (S.ACTIVE, T.CANCELED_IMMEDIATELY): S.CANCELED,
    (S.PAST_DUE, T.RENEWAL_FAILED): S.PAST_DUE,
    (S.PAST_DUE, T.DUNNING_RECOVERED): S.ACTIVE,
    (S.PAST_DUE, T.DUNNING_EXHAUSTED_CANCEL): S.CANCELED,
    (S.PAST_DUE, T.DUNNING_EXHAUSTED_UNPAID): S.UNPAID,
    (S.PAST_DUE, T.PERIOD_ENDED_CANCEL): S.CANCELED,
    (S.PAST_DUE, T.CANCELED_IMMEDIATELY): S.CANCELED,
    (S.UNPAID, T.PAYMENT_AFTER_UNPAID): S.ACTIVE,
    (S.UNPAID, T.PERIOD_ENDED_CANCEL): S.CANCELED,
    (S.UNPAID, T.CANCELED_IMMEDIATELY): S.CANCELED,
}

ALL_PAIRS = [(status, trigger) for status in S for trigger in T]


@pytest.mark.parametrize(("status", "trigger"), ALL_PAIRS)
def test_every_status_and_trigger(status: SubscriptionStatus, trigger: Trigger) -> None:
    if (status, trigger) in EXPECTED:
        target = EXPECTED[(status, trigger)]
        assert transition(status, trigger, AT) == (
            target,
            TransitionRecord(from_status=status, to_status=target, cause=trigger, at=AT),
        )
        return
    with pytest.raises(InvalidTransition) as info:
        transition(status, trigger, AT)
    expected_code = {
        S.CANCELED: ReasonCode.SUBSCRIPTION_CANCELED,
        S.INCOMPLETE_EXPIRED: ReasonCode.SUBSCRIPTION_EXPIRED,
    }.get(status, ReasonCode.INVALID_STATE_FOR_TRIGGER)
    assert info.value.reason_code is expected_code
    assert info.value.message


def test_allowed_triggers_match_the_table() -> None:
    for status in S:
        assert allowed_triggers(status) == {t for (s, t) in EXPECTED if s is status}
    assert allowed_triggers(S.CANCELED) == frozenset()


def test_transition_accepts_plain_strings_and_refuses_naive_times() -> None:
    new, record = transition("active", "renewal_failed", AT)  # type: ignore[arg-type]
    assert new is S.PAST_DUE and record.cause is T.RENEWAL_FAILED
    with pytest.raises(NaiveDatetimeError):
        transition(S.ACTIVE, T.RENEWAL_PAID, datetime(2026, 3, 1))
    with pytest.raises(ValueError):
        transition(S.ACTIVE, "exploded", AT)  # type: ignore[arg-type]


PERIOD_END = AT + timedelta(days=10)


def snapshot(
    status: SubscriptionStatus,
    canceling: bool = False,
    plan_id: str = "pro-monthly",
    pending: str | None = None,
) -> SubscriptionSnapshot:
    return SubscriptionSnapshot(
        status=status,
        cancel_at_period_end=canceling,
        plan_id=plan_id,
        current_period_end=PERIOD_END,
        pending_plan_id=pending,
    )


OK = None
# (status, cancel_at_period_end flag) -> outcome per action; None means allowed.
ACTION_TABLE = {
    (S.INCOMPLETE, False): {
        A.CHANGE_PLAN: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.CANCEL_AT_PERIOD_END: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.UNDO_CANCELLATION: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.TRIALING, False): {
        A.CHANGE_PLAN: OK,
        A.CANCEL_AT_PERIOD_END: OK,
        A.UNDO_CANCELLATION: ReasonCode.NOT_CANCELING,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.TRIALING, True): {
        A.CHANGE_PLAN: ReasonCode.CANCELLATION_PENDING,
        A.CANCEL_AT_PERIOD_END: ReasonCode.ALREADY_CANCELING,
        A.UNDO_CANCELLATION: OK,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.ACTIVE, False): {
        A.CHANGE_PLAN: OK,
        A.CANCEL_AT_PERIOD_END: OK,
        A.UNDO_CANCELLATION: ReasonCode.NOT_CANCELING,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.ACTIVE, True): {
        A.CHANGE_PLAN: ReasonCode.CANCELLATION_PENDING,
        A.CANCEL_AT_PERIOD_END: ReasonCode.ALREADY_CANCELING,
        A.UNDO_CANCELLATION: OK,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.PAST_DUE, False): {
        A.CHANGE_PLAN: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.CANCEL_AT_PERIOD_END: OK,
        A.UNDO_CANCELLATION: ReasonCode.NOT_CANCELING,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.PAST_DUE, True): {
        A.CHANGE_PLAN: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.CANCEL_AT_PERIOD_END: ReasonCode.ALREADY_CANCELING,
        A.UNDO_CANCELLATION: OK,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.UNPAID, False): {
        A.CHANGE_PLAN: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.CANCEL_AT_PERIOD_END: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.UNDO_CANCELLATION: ReasonCode.NOT_CANCELING,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.UNPAID, True): {
        A.CHANGE_PLAN: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.CANCEL_AT_PERIOD_END: ReasonCode.INVALID_STATE_FOR_ACTION,
        A.UNDO_CANCELLATION: OK,
        A.SET_DEFAULT_PAYMENT_METHOD: OK,
    },
    (S.CANCELED, False): dict.fromkeys(A, ReasonCode.SUBSCRIPTION_CANCELED),
    (S.CANCELED, True): dict.fromkeys(A, ReasonCode.SUBSCRIPTION_CANCELED),
    (S.INCOMPLETE_EXPIRED, False): dict.fromkeys(A, ReasonCode.SUBSCRIPTION_EXPIRED),
}

ACTION_CASES = [
    (status, flag, action, outcome)
    for (status, flag), outcomes in ACTION_TABLE.items()
    for action, outcome in outcomes.items()
]


@pytest.mark.parametrize(("status", "flag", "action", "outcome"), ACTION_CASES)
def test_portal_actions(
    status: SubscriptionStatus, flag: bool, action: PortalAction, outcome: ReasonCode | None
) -> None:
    state = snapshot(status, canceling=flag)
    if outcome is None:
        check_action(state, action, now=AT, new_plan_id="business-monthly")
        return
    with pytest.raises(InvalidTransition) as info:
        check_action(state, action, now=AT, new_plan_id="business-monthly")
    assert info.value.reason_code is outcome


def test_action_table_covers_every_live_status() -> None:
    assert {status for (status, _flag) in ACTION_TABLE} == set(S)
    assert all(set(outcomes) == set(A) for outcomes in ACTION_TABLE.values())


def test_change_plan_to_the_current_or_scheduled_plan() -> None:
    with pytest.raises(InvalidTransition) as info:
        check_action(snapshot(S.ACTIVE), A.CHANGE_PLAN, now=AT, new_plan_id="pro-monthly")
    assert info.value.reason_code is ReasonCode.PLAN_UNCHANGED
    scheduled = snapshot(S.ACTIVE, pending="starter-monthly")
    with pytest.raises(InvalidTransition) as info:
        check_action(scheduled, A.CHANGE_PLAN, now=AT, new_plan_id="starter-monthly")
    assert info.value.reason_code is ReasonCode.PLAN_UNCHANGED
    # picking the current plan again withdraws the scheduled downgrade
    check_action(scheduled, A.CHANGE_PLAN, now=AT, new_plan_id="pro-monthly")
    with pytest.raises(ValueError, match="new_plan_id"):
        check_action(snapshot(S.ACTIVE), A.CHANGE_PLAN, now=AT)


def test_undo_cancellation_after_the_period_end_is_refused() -> None:
    canceling = snapshot(S.ACTIVE, canceling=True)
    check_action(canceling, A.UNDO_CANCELLATION, now=PERIOD_END - timedelta(seconds=1))
    with pytest.raises(InvalidTransition) as info:
        check_action(canceling, A.UNDO_CANCELLATION, now=PERIOD_END)
    assert info.value.reason_code is ReasonCode.PERIOD_ENDED


GRACE = AT + timedelta(days=3)


@pytest.mark.parametrize(
    ("status", "canceling", "now", "grace_until", "expected"),
    [
        (S.ACTIVE, False, AT, None, True),
        (S.ACTIVE, False, PERIOD_END + timedelta(hours=1), None, True),
        (S.ACTIVE, True, PERIOD_END - timedelta(seconds=1), None, True),
        (S.ACTIVE, True, PERIOD_END, None, False),
        (S.TRIALING, False, AT, None, True),
        (S.TRIALING, True, PERIOD_END, None, False),
        (S.PAST_DUE, False, AT, GRACE, True),
        (S.PAST_DUE, False, GRACE, GRACE, False),
        (S.PAST_DUE, False, AT, None, False),
        (S.PAST_DUE, True, PERIOD_END, PERIOD_END + timedelta(days=1), False),
        (S.INCOMPLETE, False, AT, GRACE, False),
        (S.INCOMPLETE_EXPIRED, False, AT, None, False),
        (S.UNPAID, False, AT, GRACE, False),
        (S.CANCELED, False, AT, GRACE, False),
    ],
)
def test_has_access(
    status: SubscriptionStatus,
    canceling: bool,
    now: datetime,
    grace_until: datetime | None,
    expected: bool,
) -> None:
    assert has_access(status, canceling, now, PERIOD_END, grace_until) is expected


def test_records_survive_the_temporal_pydantic_converter() -> None:
    from temporalio.contrib.pydantic import pydantic_data_converter

    _, record = transition(S.ACTIVE, T.RENEWAL_FAILED, AT)
    state = snapshot(S.PAST_DUE, canceling=True, pending="starter-monthly")
    converter = pydantic_data_converter.payload_converter
    back = converter.from_payloads(
        converter.to_payloads([record, state]), [TransitionRecord, SubscriptionSnapshot]
    )
    assert back == [record, state]
