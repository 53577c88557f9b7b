"""Notifications per outcome, the customer message keys, and their idempotency keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.declines import CustomerMessage, DeclineInfo, classify_decline
from billing.dunning import (
    AttemptSucceeded,
    CardRef,
    RetryAt,
    Started,
    TimerFired,
    WaitForCustomer,
    decide,
    load_policy,
)
from billing.dunning.decisions import RetryNow
from billing.dunning.events import AttemptFailed
from billing.dunning.messages import (
    NotificationKind,
    customer_message,
    notification_key,
    outcome_kind,
    planned_notifications,
)

AT = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
POLICY = load_policy("standard", 2)


@pytest.mark.parametrize(
    "code", ["lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist"]
)
def test_fraud_type_declines_always_read_as_a_generic_decline(code: str) -> None:
    for network in ({}, {"network_decline_code": "41"}, {"advice_code": "do_not_try_again"}):
        classification = classify_decline(DeclineInfo(decline_code=code, **network))
        assert customer_message(classification) is CustomerMessage.GENERIC_DECLINE
        assert customer_message(classification, hard=True) is CustomerMessage.GENERIC_DECLINE


def test_network_hardened_declines_ask_for_another_method() -> None:
    classification = classify_decline(DeclineInfo(decline_code="do_not_honor"))
    assert customer_message(classification) is CustomerMessage.CONTACT_ISSUER
    assert customer_message(classification, hard=True) is CustomerMessage.USE_ANOTHER_METHOD


@pytest.mark.parametrize(
    ("decline", "kind"),
    [
        (DeclineInfo(decline_code="insufficient_funds"), NotificationKind.FAILURE_NOTICE),
        (DeclineInfo(decline_code="processing_error"), NotificationKind.FAILURE_NOTICE),
        (DeclineInfo(decline_code="lost_card"), NotificationKind.FAILURE_NOTICE),
        (DeclineInfo(decline_code="expired_card"), NotificationKind.ACTION_REQUIRED),
        (DeclineInfo(code="authentication_required"), NotificationKind.ACTION_REQUIRED),
    ],
)
def test_outcome_kind(decline: DeclineInfo, kind: NotificationKind) -> None:
    assert outcome_kind(classify_decline(decline)) is kind
    assert outcome_kind(None) is NotificationKind.RECOVERED


def test_notification_keys_are_stable_and_distinct() -> None:
    keys = {
        notification_key(invoice, kind, attempt)
        for invoice in ("in_1", "in_2")
        for kind in NotificationKind
        for attempt in (1, 2)
    }
    assert len(keys) == 2 * len(NotificationKind) * 2
    assert notification_key("in_1", NotificationKind.FINAL_NOTICE, 3) == notification_key(
        "in_1", NotificationKind.FINAL_NOTICE, 3
    )


def start(decline: DeclineInfo):
    card = CardRef("fp", "visa")
    return decide(None, Started("in_7", 500, "EUR", card, 0, AT, POLICY, decline), AT, 0.5)


def test_a_failure_plans_a_notice_and_a_reminder_before_the_retry() -> None:
    state, decision = start(DeclineInfo(decline_code="do_not_honor"))
    assert isinstance(decision, RetryAt)
    planned = planned_notifications(state, decision, AT)
    kinds = {n.kind: n for n in planned}
    assert set(kinds) == {NotificationKind.FAILURE_NOTICE}  # the retry is < 24 h away
    assert kinds[NotificationKind.FAILURE_NOTICE].message is CustomerMessage.CONTACT_ISSUER
    assert planned == planned_notifications(state, decision, AT)
    # A later retry (> reminder offset away) gets a reminder the day before.
    when = decision.when
    state, _ = decide(state, TimerFired(when), when, 0.5)
    state, decision = decide(
        state, AttemptFailed(when, DeclineInfo(decline_code="do_not_honor")), when, 0.5
    )
    for _ in range(2):
        when = decision.when
        state, _ = decide(state, TimerFired(when), when, 0.5)
        state, decision = decide(
            state, AttemptFailed(when, DeclineInfo(decline_code="do_not_honor")), when, 0.5
        )
    reminders = [
        n for n in planned_notifications(state, decision, when) if n.kind == "retry_reminder"
    ]
    assert len(reminders) == 1
    assert reminders[0].send_at == decision.when - timedelta(hours=24)
    assert reminders[0].key == notification_key("in_7", NotificationKind.RETRY_REMINDER, 5)


def test_the_last_retry_and_a_customer_deadline_get_a_final_notice() -> None:
    state, decision = start(DeclineInfo(decline_code="do_not_honor"))
    while isinstance(decision, RetryAt) and state.scheduled_retries + 1 < POLICY.max_retries:
        when = decision.when
        state, retry = decide(state, TimerFired(when), when, 0.5)
        assert isinstance(retry, RetryNow)
        state, decision = decide(
            state, AttemptFailed(when, DeclineInfo(decline_code="do_not_honor")), when, 0.5
        )
    assert isinstance(decision, RetryAt)
    finals = [n for n in planned_notifications(state, decision, when) if n.kind == "final_notice"]
    assert len(finals) == 1
    assert finals[0].send_at == max(when, decision.when - timedelta(hours=72))

    state, decision = start(DeclineInfo(decline_code="expired_card"))
    assert isinstance(decision, WaitForCustomer)
    planned = {n.kind: n for n in planned_notifications(state, decision, AT)}
    assert planned[NotificationKind.ACTION_REQUIRED].message is CustomerMessage.UPDATE_CARD
    assert planned[NotificationKind.FINAL_NOTICE].send_at == decision.deadline - timedelta(hours=72)


def test_recovery_plans_one_recovered_notice() -> None:
    state, decision = start(DeclineInfo(decline_code="do_not_honor"))
    when = decision.when
    state, _ = decide(state, TimerFired(when), when, 0.5)
    state, decision = decide(state, AttemptSucceeded(when), when, 0.5)
    planned = planned_notifications(state, decision, when)
    assert [(n.kind, n.key) for n in planned] == [
        (NotificationKind.RECOVERED, notification_key("in_7", NotificationKind.RECOVERED, 2))
    ]


def test_lost_card_notice_never_reveals_the_reason() -> None:
    state, decision = start(DeclineInfo(decline_code="stolen_card", network_decline_code="43"))
    (notice,) = planned_notifications(state, decision, AT)
    assert notice.kind is NotificationKind.FAILURE_NOTICE
    assert notice.message is CustomerMessage.GENERIC_DECLINE
