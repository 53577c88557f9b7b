"""The subscription lifecycle: one transition table shared by the workflow and the API.

Statuses follow Stripe's subscription statuses. ``cancel_at_period_end`` is a flag on
the subscription, not a status: a canceling subscription stays ``active`` (or trialing,
or past_due) until ``period_ended_cancel`` fires at the period end.

    incomplete ── first_payment_succeeded ──────────> active
       │  ├────── trial_started ────────────────────> trialing
       │  └────── first_payment_failed_expired ─────> incomplete_expired (terminal)
    trialing ──── trial_ended_paid ─────────────────> active
       └───────── trial_ended_unpaid ───────────────> past_due
    active ────── renewal_paid ─────────────────────> active
       └───────── renewal_failed ───────────────────> past_due
    past_due ──── renewal_failed ───────────────────> past_due (a later period also failed)
       ├───────── dunning_recovered ────────────────> active
       ├───────── dunning_exhausted_cancel ─────────> canceled (terminal)
       └───────── dunning_exhausted_unpaid ─────────> unpaid
    unpaid ────── payment_after_unpaid ─────────────> active
    any live status except incomplete:
                  period_ended_cancel ──────────────> canceled
    any live status:
                  canceled_immediately (ops) ───────> canceled

Portal actions change no status; ``check_action`` is the 409 pre-check the API runs and
the workflow's update validator runs again:

    change_plan                 trialing or active, and not while a cancellation is
                                pending: the customer undoes the cancellation first, so
                                one request never both changes and keeps a cancellation.
                                Refused if the requested plan is already the target.
    cancel_at_period_end        trialing, active or past_due, flag not already set
    undo_cancellation           flag set and the current period has not ended
                                (trialing, active, past_due or unpaid)
    set_default_payment_method  any status that is not terminal

Currency and billing-cycle rules for plan changes live in ``billing.proration``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType

from billing.periods import as_utc


class SubscriptionStatus(StrEnum):
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"


class Trigger(StrEnum):
    FIRST_PAYMENT_SUCCEEDED = "first_payment_succeeded"
    FIRST_PAYMENT_FAILED_EXPIRED = "first_payment_failed_expired"
    TRIAL_STARTED = "trial_started"
    TRIAL_ENDED_PAID = "trial_ended_paid"
    TRIAL_ENDED_UNPAID = "trial_ended_unpaid"
    RENEWAL_PAID = "renewal_paid"
    RENEWAL_FAILED = "renewal_failed"
    DUNNING_RECOVERED = "dunning_recovered"
    DUNNING_EXHAUSTED_CANCEL = "dunning_exhausted_cancel"
    DUNNING_EXHAUSTED_UNPAID = "dunning_exhausted_unpaid"
    PERIOD_ENDED_CANCEL = "period_ended_cancel"
    CANCELED_IMMEDIATELY = "canceled_immediately"
    PAYMENT_AFTER_UNPAID = "payment_after_unpaid"


class PortalAction(StrEnum):
    CHANGE_PLAN = "change_plan"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"
    UNDO_CANCELLATION = "undo_cancellation"
    SET_DEFAULT_PAYMENT_METHOD = "set_default_payment_method"


class ReasonCode(StrEnum):
    SUBSCRIPTION_CANCELED = "subscription_canceled"
    SUBSCRIPTION_EXPIRED = "subscription_expired"
    INVALID_STATE_FOR_TRIGGER = "invalid_state_for_trigger"
    INVALID_STATE_FOR_ACTION = "invalid_state_for_action"
    ALREADY_CANCELING = "already_canceling"
    NOT_CANCELING = "not_canceling"
    CANCELLATION_PENDING = "cancellation_pending"
    PERIOD_ENDED = "period_ended"
    PLAN_UNCHANGED = "plan_unchanged"


class InvalidTransition(Exception):
    """A trigger or action the current state does not allow."""

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


_S = SubscriptionStatus
_T = Trigger

TERMINAL_STATUSES: frozenset[SubscriptionStatus] = frozenset({_S.CANCELED, _S.INCOMPLETE_EXPIRED})

TRANSITIONS: Mapping[tuple[SubscriptionStatus, Trigger], SubscriptionStatus] = MappingProxyType(
    {
        (_S.INCOMPLETE, _T.FIRST_PAYMENT_SUCCEEDED): _S.ACTIVE,
        (_S.INCOMPLETE, _T.FIRST_PAYMENT_FAILED_EXPIRED): _S.INCOMPLETE_EXPIRED,
        (_S.INCOMPLETE, _T.TRIAL_STARTED): _S.TRIALING,
        (_S.INCOMPLETE, _T.CANCELED_IMMEDIATELY): _S.CANCELED,
        (_S.TRIALING, _T.TRIAL_ENDED_PAID): _S.ACTIVE,
        (_S.TRIALING, _T.TRIAL_ENDED_UNPAID): _S.PAST_DUE,
        (_S.TRIALING, _T.PERIOD_ENDED_CANCEL): _S.CANCELED,
        (_S.TRIALING, _T.CANCELED_IMMEDIATELY): _S.CANCELED,
        (_S.ACTIVE, _T.RENEWAL_PAID): _S.ACTIVE,
        (_S.ACTIVE, _T.RENEWAL_FAILED): _S.PAST_DUE,
        (_S.ACTIVE, _T.PERIOD_ENDED_CANCEL): _S.CANCELED,
        (_S.ACTIVE, _T.CANCELED_IMMEDIATELY): _S.CANCELED,
        (_S.PAST_DUE, _T.RENEWAL_FAILED): _S.PAST_DUE,
        (_S.PAST_DUE, _T.DUNNING_RECOVERED): _S.ACTIVE,
        (_S.PAST_DUE, _T.DUNNING_EXHAUSTED_CANCEL): _S.CANCELED,
        (_S.PAST_DUE, _T.DUNNING_EXHAUSTED_UNPAID): _S.UNPAID,
        (_S.PAST_DUE, _T.PERIOD_ENDED_CANCEL): _S.CANCELED,
        (_S.PAST_DUE, _T.CANCELED_IMMEDIATELY): _S.CANCELED,
        (_S.UNPAID, _T.PAYMENT_AFTER_UNPAID): _S.ACTIVE,
        (_S.UNPAID, _T.PERIOD_ENDED_CANCEL): _S.CANCELED,
        (_S.UNPAID, _T.CANCELED_IMMEDIATELY): _S.CANCELED,
    }
)

ACTION_STATUSES: Mapping[PortalAction, frozenset[SubscriptionStatus]] = MappingProxyType(
    {
        PortalAction.CHANGE_PLAN: frozenset({_S.TRIALING, _S.ACTIVE}),
        PortalAction.CANCEL_AT_PERIOD_END: frozenset({_S.TRIALING, _S.ACTIVE, _S.PAST_DUE}),
        PortalAction.UNDO_CANCELLATION: frozenset({_S.TRIALING, _S.ACTIVE, _S.PAST_DUE, _S.UNPAID}),
        PortalAction.SET_DEFAULT_PAYMENT_METHOD: frozenset(set(_S) - TERMINAL_STATUSES),
    }
)


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    from_status: SubscriptionStatus
    to_status: SubscriptionStatus
    cause: Trigger
    at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionSnapshot:
    """What ``check_action`` needs to know about a subscription."""

    status: SubscriptionStatus
    cancel_at_period_end: bool
    plan_id: str
    current_period_end: datetime | None
    # A plan change scheduled for the period end (a deferred downgrade), if any.
    pending_plan_id: str | None = None


def allowed_triggers(status: SubscriptionStatus) -> frozenset[Trigger]:
    return frozenset(trigger for (src, trigger) in TRANSITIONS if src is status)


def transition(
    status: SubscriptionStatus, trigger: Trigger, at: datetime
) -> tuple[SubscriptionStatus, TransitionRecord]:
    """Apply ``trigger``; the record is what the workflow and ledger keep as history."""
    status, trigger = SubscriptionStatus(status), Trigger(trigger)
    at = as_utc(at, "at")
    target = TRANSITIONS.get((status, trigger))
    if target is None:
        _refuse_terminal(status)
        raise InvalidTransition(
            ReasonCode.INVALID_STATE_FOR_TRIGGER, f"{trigger} cannot happen while {status}"
        )
    return target, TransitionRecord(from_status=status, to_status=target, cause=trigger, at=at)


def check_action(
    snapshot: SubscriptionSnapshot,
    action: PortalAction,
    *,
    now: datetime,
    new_plan_id: str | None = None,
) -> None:
    """Raise ``InvalidTransition`` if the portal action is not allowed right now."""
    action = PortalAction(action)
    now = as_utc(now, "now")
    _refuse_terminal(snapshot.status)
    if snapshot.status not in ACTION_STATUSES[action]:
        raise InvalidTransition(
            ReasonCode.INVALID_STATE_FOR_ACTION,
            f"{action} is not available while the subscription is {snapshot.status}",
        )
    if action is PortalAction.CHANGE_PLAN:
        if new_plan_id is None:
            raise ValueError("change_plan needs new_plan_id")
        if snapshot.cancel_at_period_end:
            raise InvalidTransition(
                ReasonCode.CANCELLATION_PENDING,
                "the subscription is set to cancel; undo the cancellation before changing plan",
            )
        # Choosing the current plan while a downgrade is scheduled withdraws that downgrade.
        target = snapshot.pending_plan_id or snapshot.plan_id
        if new_plan_id == target:
            raise InvalidTransition(
                ReasonCode.PLAN_UNCHANGED, f"the subscription is already set to {target!r}"
            )
    elif action is PortalAction.CANCEL_AT_PERIOD_END:
        if snapshot.cancel_at_period_end:
            raise InvalidTransition(
                ReasonCode.ALREADY_CANCELING, "the subscription is already set to cancel"
            )
    elif action is PortalAction.UNDO_CANCELLATION:
        if not snapshot.cancel_at_period_end:
            raise InvalidTransition(
                ReasonCode.NOT_CANCELING, "the subscription is not set to cancel"
            )
        if snapshot.current_period_end is not None and now >= as_utc(
            snapshot.current_period_end, "current_period_end"
        ):
            raise InvalidTransition(
                ReasonCode.PERIOD_ENDED, "the period has ended; the cancellation has taken effect"
            )


def has_access(
    status: SubscriptionStatus,
    cancel_at_period_end: bool,
    now: datetime,
    period_end: datetime | None,
    grace_until: datetime | None,
) -> bool:
    """Whether the customer may use the product at ``now``.

    ``past_due`` keeps access only until ``grace_until`` (None: no grace period). A
    pending cancellation ends access at ``period_end`` even if the workflow has not yet
    applied ``period_ended_cancel``.
    """
    status = SubscriptionStatus(status)
    now = as_utc(now, "now")
    if cancel_at_period_end and period_end is not None and now >= as_utc(period_end, "period_end"):
        return False
    # An active subscription past its period end is waiting for the renewal to settle.
    if status in (_S.TRIALING, _S.ACTIVE):
        return True
    if status is _S.PAST_DUE:
        return grace_until is not None and now < as_utc(grace_until, "grace_until")
    return False


def _refuse_terminal(status: SubscriptionStatus) -> None:
    if status is _S.CANCELED:
        raise InvalidTransition(ReasonCode.SUBSCRIPTION_CANCELED, "the subscription is canceled")
    if status is _S.INCOMPLETE_EXPIRED:
        raise InvalidTransition(
            ReasonCode.SUBSCRIPTION_EXPIRED, "the subscription expired before its first payment"
        )
