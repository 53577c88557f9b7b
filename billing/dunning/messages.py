"""Which notification a dunning step sends, what it tells the customer, and the
idempotency key that makes each one go out at most once.

    attempt failed, customer must act (fix data, 3-D Secure)  -> action_required
    attempt failed, Dunwell retries                           -> failure_notice
    retry scheduled                                           -> retry_reminder before it
    last retry scheduled / customer deadline set              -> final_notice before the end
    paid                                                      -> recovered
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from billing.declines import Classification, CustomerMessage, DeclineFamily
from billing.dunning.decisions import Decision, Recovered, RetryAt, WaitForCustomer
from billing.dunning.state import IMMEDIATE_TRIGGERS, DunningState


class NotificationKind(StrEnum):
    FAILURE_NOTICE = "failure_notice"
    RETRY_REMINDER = "retry_reminder"
    FINAL_NOTICE = "final_notice"
    RECOVERED = "recovered"
    ACTION_REQUIRED = "action_required"


# Fraud-type declines never reveal the real reason (card-network and Stripe guidance:
# telling a fraudster the card was reported stolen helps the fraudster).
_NEVER_REVEAL = frozenset(
    {"lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist"}
)
_CUSTOMER_ACTS = frozenset({DeclineFamily.FIX_DATA, DeclineFamily.AUTHENTICATION_REQUIRED})


@dataclass(frozen=True)
class Notification:
    kind: NotificationKind
    send_at: datetime
    key: str  # idempotency key for the mail activity
    attempt: int  # 1-based number of the attempt it is about
    message: CustomerMessage | None = None


def customer_message(classification: Classification, *, hard: bool = False) -> CustomerMessage:
    """The message key for a decline; ``hard`` when network rules hardened a softer
    classification (the card can no longer be charged)."""
    if classification.reason in _NEVER_REVEAL:
        return CustomerMessage.GENERIC_DECLINE
    if hard and classification.family is not DeclineFamily.HARD:
        return CustomerMessage.USE_ANOTHER_METHOD
    return classification.message


def outcome_kind(classification: Classification | None) -> NotificationKind:
    """The notification for an attempt outcome; ``None`` means the attempt succeeded."""
    if classification is None:
        return NotificationKind.RECOVERED
    if classification.family in _CUSTOMER_ACTS:
        return NotificationKind.ACTION_REQUIRED
    return NotificationKind.FAILURE_NOTICE


def notification_key(invoice_id: str, kind: NotificationKind, attempt: int) -> str:
    return f"dunning:{invoice_id}:{kind.value}:{attempt}"


def planned_notifications(
    state: DunningState, decision: Decision, now: datetime
) -> tuple[Notification, ...]:
    """Notifications due for the step ``decide`` just returned. Calling this again for the
    same step yields the same keys, so re-sending is harmless."""
    policy = state.policy
    attempts = len(state.attempts)
    planned: list[Notification] = []

    def add(
        kind: NotificationKind, at: datetime, attempt: int, msg: CustomerMessage | None
    ) -> None:
        key = notification_key(state.invoice_id, kind, attempt)
        planned.append(Notification(kind, max(at, now), key, attempt, msg))

    if isinstance(decision, Recovered):
        add(NotificationKind.RECOVERED, decision.at, attempts, None)
        return tuple(planned)
    last = state.attempts[-1] if state.attempts else None
    message = last.message if last is not None else None
    if last is not None and not last.succeeded:
        kind = (
            NotificationKind.ACTION_REQUIRED
            if last.family in _CUSTOMER_ACTS
            else NotificationKind.FAILURE_NOTICE
        )
        add(kind, last.at, attempts, message)
    if isinstance(decision, RetryAt):
        reminder = decision.when - timedelta(hours=policy.reminder_before_retry_hours)
        if reminder > now:
            add(NotificationKind.RETRY_REMINDER, reminder, attempts + 1, message)
        is_last = (
            decision.reason not in IMMEDIATE_TRIGGERS
            and not state.outage_budget_left  # an outage retry leaves the others
            and state.scheduled_retries + 1 >= policy.max_retries
        )
        if is_last:
            final = decision.when - timedelta(hours=policy.final_notice_before_end_hours)
            add(NotificationKind.FINAL_NOTICE, final, attempts + 1, message)
    if isinstance(decision, WaitForCustomer):
        final = decision.deadline - timedelta(hours=policy.final_notice_before_end_hours)
        add(NotificationKind.FINAL_NOTICE, final, attempts + 1, message)
    return tuple(planned)
