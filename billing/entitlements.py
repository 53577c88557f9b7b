"""Entitlements: whether a customer may use the product now, why, with which features,
and when that will next change. One pure function answers for the subscription
workflow (which emits ``access.granted`` / ``access.revoked`` from its own timer at the
instant the answer changes) and for the API (``GET /v1/subscriptions/{id}/access``,
``GET /v1/customers/{id}/entitlements``, the portal), so both always agree.

    reason               has access   when it next changes (if known)
    trialing             yes          the period end, if a cancellation is pending
    active               yes          the period end, if a cancellation is pending
    past_due_in_grace    yes          ``grace_until``
    past_due             no           (grace over; a payment brings it back)
    unpaid               no           (a payment brings it back)
    canceled             no           never (``ended_at`` says when access ended)
    incomplete           no           (the first payment grants it)
    incomplete_expired   no           never

A pending deferred plan change (a downgrade at the period end) changes the features in
force at the period end; that is a known next change too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from billing.lifecycle import SubscriptionStatus, has_access
from billing.periods import as_utc

FeatureValue = bool | int


class AccessReason(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE_IN_GRACE = "past_due_in_grace"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    CANCELED = "canceled"
    INCOMPLETE = "incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired"


class NextChange(StrEnum):
    ACCESS_ENDS = "access_ends"  # a pending cancellation, or the end of the grace period
    PLAN_CHANGES = "plan_changes"  # a scheduled plan change takes effect


@dataclass(frozen=True)
class AccessFacts:
    """What access depends on, as the subscription workflow holds it."""

    status: SubscriptionStatus
    cancel_at_period_end: bool
    period_end: datetime | None
    grace_until: datetime | None
    features: Mapping[str, FeatureValue] = field(default_factory=dict)
    # The plan a deferred change moves to at the period end.
    pending_plan_id: str | None = None
    # When the subscription became canceled (its transition), if it is canceled.
    canceled_at: datetime | None = None


@dataclass(frozen=True)
class Access:
    has_access: bool
    reason: AccessReason
    features: Mapping[str, FeatureValue]  # in force now; empty without access
    grace_until: datetime | None = None  # past_due_in_grace only
    ended_at: datetime | None = None  # canceled only
    next_change_at: datetime | None = None
    next_change: NextChange | None = None


_S = SubscriptionStatus


def access(facts: AccessFacts, now: datetime) -> Access:
    """The customer's access at ``now``; ``next_change_at`` is the next instant the answer
    is known to change (the workflow's timer for ``access.revoked``)."""
    now = as_utc(now, "now")
    status = SubscriptionStatus(facts.status)
    period_end = as_utc(facts.period_end, "period_end") if facts.period_end else None
    grace = as_utc(facts.grace_until, "grace_until") if facts.grace_until else None
    allowed = has_access(status, facts.cancel_at_period_end, now, period_end, grace)
    features = dict(facts.features) if allowed else {}
    if status is _S.CANCELED:
        return Access(False, AccessReason.CANCELED, {}, ended_at=facts.canceled_at or period_end)
    if facts.cancel_at_period_end and period_end is not None and now >= period_end:
        # The boundary has passed; the workflow applies the cancellation at its timer.
        return Access(False, AccessReason.CANCELED, {}, ended_at=period_end)
    if status is _S.PAST_DUE:
        if allowed:
            assert grace is not None
            return Access(
                True,
                AccessReason.PAST_DUE_IN_GRACE,
                features,
                grace_until=grace,
                next_change_at=_earliest(grace, _cancel_at(facts, period_end)),
                next_change=NextChange.ACCESS_ENDS,
            )
        return Access(False, AccessReason.PAST_DUE, {})
    if status in (_S.TRIALING, _S.ACTIVE):
        reason = AccessReason.TRIALING if status is _S.TRIALING else AccessReason.ACTIVE
        cancel_at = _cancel_at(facts, period_end)
        if cancel_at is not None:
            return Access(
                True,
                reason,
                features,
                next_change_at=cancel_at,
                next_change=NextChange.ACCESS_ENDS,
            )
        if facts.pending_plan_id is not None and period_end is not None and now < period_end:
            return Access(
                True,
                reason,
                features,
                next_change_at=period_end,
                next_change=NextChange.PLAN_CHANGES,
            )
        return Access(True, reason, features)
    return Access(False, AccessReason(status.value), {})


def _cancel_at(facts: AccessFacts, period_end: datetime | None) -> datetime | None:
    return period_end if facts.cancel_at_period_end else None


def _earliest(first: datetime, second: datetime | None) -> datetime:
    return first if second is None else min(first, second)
