"""Entitlements for every lifecycle state: one row per state and flag combination."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing.entitlements import Access, AccessFacts, AccessReason, NextChange, access
from billing.lifecycle import SubscriptionStatus as S

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
PERIOD_END = datetime(2026, 4, 1, tzinfo=UTC)
GRACE = NOW + timedelta(days=3)
CANCELED_AT = datetime(2026, 3, 1, tzinfo=UTC)
FEATURES = {"seats": 5, "api_calls_per_month": 100000, "sso": False}

R = AccessReason


def facts(
    status: S,
    *,
    canceling: bool = False,
    grace: datetime | None = None,
    pending: str | None = None,
    canceled_at: datetime | None = None,
) -> AccessFacts:
    return AccessFacts(
        status=status,
        cancel_at_period_end=canceling,
        period_end=PERIOD_END,
        grace_until=grace,
        features=FEATURES,
        pending_plan_id=pending,
        canceled_at=canceled_at,
    )


ACCESS_ENDS, PLAN_CHANGES = NextChange.ACCESS_ENDS, NextChange.PLAN_CHANGES

TABLE = [
    # (facts, now, expected)
    (facts(S.TRIALING), NOW, Access(True, R.TRIALING, FEATURES)),
    (
        facts(S.TRIALING, canceling=True),
        NOW,
        Access(True, R.TRIALING, FEATURES, next_change_at=PERIOD_END, next_change=ACCESS_ENDS),
    ),
    (facts(S.ACTIVE), NOW, Access(True, R.ACTIVE, FEATURES)),
    # An active subscription past its period end waits for its renewal with access.
    (facts(S.ACTIVE), PERIOD_END + timedelta(hours=1), Access(True, R.ACTIVE, FEATURES)),
    (
        facts(S.ACTIVE, canceling=True),
        PERIOD_END - timedelta(seconds=1),
        Access(True, R.ACTIVE, FEATURES, next_change_at=PERIOD_END, next_change=ACCESS_ENDS),
    ),
    # The boundary itself: access has ended even before the workflow applies it.
    (
        facts(S.ACTIVE, canceling=True),
        PERIOD_END,
        Access(False, R.CANCELED, {}, ended_at=PERIOD_END),
    ),
    (
        facts(S.ACTIVE, pending="starter-monthly"),
        NOW,
        Access(True, R.ACTIVE, FEATURES, next_change_at=PERIOD_END, next_change=PLAN_CHANGES),
    ),
    (
        facts(S.PAST_DUE, grace=GRACE),
        NOW,
        Access(
            True,
            R.PAST_DUE_IN_GRACE,
            FEATURES,
            grace_until=GRACE,
            next_change_at=GRACE,
            next_change=ACCESS_ENDS,
        ),
    ),
    # Grace past the period end of a canceling subscription: the boundary comes first.
    (
        facts(S.PAST_DUE, grace=PERIOD_END + timedelta(days=2), canceling=True),
        NOW,
        Access(
            True,
            R.PAST_DUE_IN_GRACE,
            FEATURES,
            grace_until=PERIOD_END + timedelta(days=2),
            next_change_at=PERIOD_END,
            next_change=ACCESS_ENDS,
        ),
    ),
    (facts(S.PAST_DUE, grace=GRACE), GRACE, Access(False, R.PAST_DUE, {})),
    (facts(S.PAST_DUE), NOW, Access(False, R.PAST_DUE, {})),
    (facts(S.UNPAID, grace=GRACE), NOW, Access(False, R.UNPAID, {})),
    (
        facts(S.CANCELED, canceled_at=CANCELED_AT),
        NOW,
        Access(False, R.CANCELED, {}, ended_at=CANCELED_AT),
    ),
    (facts(S.CANCELED), NOW, Access(False, R.CANCELED, {}, ended_at=PERIOD_END)),
    (facts(S.INCOMPLETE), NOW, Access(False, R.INCOMPLETE, {})),
    (facts(S.INCOMPLETE_EXPIRED), NOW, Access(False, R.INCOMPLETE_EXPIRED, {})),
]


@pytest.mark.parametrize(("given", "now", "expected"), TABLE)
def test_access_in_every_state(given: AccessFacts, now: datetime, expected: Access) -> None:
    assert access(given, now) == expected


def test_every_status_and_reason_is_in_the_table() -> None:
    assert {row[0].status for row in TABLE} == set(S)
    assert {row[2].reason for row in TABLE} == set(AccessReason)


def test_features_are_a_copy_the_caller_cannot_change_the_catalog_through() -> None:
    granted = access(facts(S.ACTIVE), NOW)
    assert granted.features == FEATURES
    assert granted.features is not FEATURES


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="now"):
        access(facts(S.ACTIVE), datetime(2026, 3, 10))
