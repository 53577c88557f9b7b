"""Dunning policies as versioned data (``data/policies.json``).

A policy says how many automatic retries to make and over what window, how to space
them, how long access survives a failed payment, and what happens when dunning ends
without payment. Invoices keep the policy version they started with: every version
ever published stays in the data file and loadable by ``load_policy``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cache
from importlib.resources import files
from typing import Any


class EndAction(StrEnum):
    """What happens to the subscription when dunning ends without payment."""

    CANCEL = "cancel"
    MARK_UNPAID = "mark_unpaid"
    LEAVE_PAST_DUE = "leave_past_due"


class InvoiceEndAction(StrEnum):
    """What happens to the unpaid invoice when dunning ends without payment."""

    LEAVE_OPEN = "leave_open"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"
    VOID_VIA_CREDIT_NOTE = "void_via_credit_note"


class RevokeAccess(StrEnum):
    """When access ends once dunning has stopped without payment."""

    END_OF_GRACE = "end_of_grace"  # the later of the grace period's end and the stop
    AT_END_ACTION = "at_end_action"  # at the stop, even inside the grace period


@dataclass(frozen=True)
class Policy:
    policy_id: str
    version: int
    max_retries: int  # scheduled automatic retries after the first failure
    window_hours: int  # no attempt later than first failure + window
    first_delay_minutes: int
    backoff_factor_percent: int
    max_delay_minutes: int
    jitter_percent: int
    min_gap_minutes: int
    outage_delay_min_minutes: int
    outage_delay_max_minutes: int
    max_immediate_retries: int  # retries triggered by card updates and ops, per invoice
    pay_days_of_month: tuple[int, ...]
    pay_on_last_business_day: bool
    local_morning_start_hour: int
    local_morning_end_hour: int
    pay_date_lean_early_minutes: int
    pay_date_lean_late_minutes: int
    grace_period_hours: int
    end_action: EndAction
    invoice_end_action: InvoiceEndAction
    revoke_access: RevokeAccess
    reminder_before_retry_hours: int
    final_notice_before_end_hours: int
    # Since standard@v3 (the defaults keep every earlier version's behaviour):
    # a hard decline blocks the card and the run waits for a new one until the window ends
    hard_decline_waits_for_new_card: bool = False
    # issuer-outage retries (issuer unavailable, processing error) spend their own budget,
    # spaced first_delay, 2x, 4x ... up to max_delay, not the scheduled retries (0: they
    # spend scheduled retries, 1-3 h apart)
    outage_budget: int = 0
    outage_first_delay_minutes: int = 0
    outage_max_delay_minutes: int = 0
    # background retries (scheduled, outage, card updater) only in the customer's local
    # [start, end) hours; None: at any hour
    daytime_start_hour: int | None = None
    daytime_end_hour: int | None = None

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.window_hours)

    @property
    def grace_period(self) -> timedelta:
        return timedelta(hours=self.grace_period_hours)

    @property
    def key(self) -> str:
        return f"{self.policy_id}@v{self.version}"


class UnknownPolicyError(LookupError):
    """No policy with that id and version was ever published."""


@dataclass(frozen=True)
class _Assignment:
    plan_id: str
    segment: str
    policy_id: str
    version: int
    generation: int = 1  # assignments a run of this generation or later uses

    def specificity(self, plan_id: str, segment: str) -> int | None:
        if self.plan_id not in ("*", plan_id) or self.segment not in ("*", segment):
            return None
        return (2 if self.plan_id != "*" else 0) + (1 if self.segment != "*" else 0)


def _policy_from_json(raw: dict[str, Any]) -> Policy:
    fields = dict(raw)
    fields["pay_days_of_month"] = tuple(fields["pay_days_of_month"])
    fields["end_action"] = EndAction(fields["end_action"])
    fields["invoice_end_action"] = InvoiceEndAction(fields["invoice_end_action"])
    fields["revoke_access"] = RevokeAccess(fields["revoke_access"])
    policy = Policy(**fields)
    _check(policy)
    return policy


def _check(policy: Policy) -> None:
    if policy.max_retries < 0 or policy.window_hours <= 0 or policy.first_delay_minutes <= 0:
        raise ValueError(f"policy {policy.key}: retries and window must be positive")
    if not 0 <= policy.jitter_percent < 100:
        raise ValueError(f"policy {policy.key}: jitter_percent must be in [0, 100)")
    if policy.outage_delay_min_minutes > policy.outage_delay_max_minutes:
        raise ValueError(f"policy {policy.key}: outage delay bounds are reversed")
    if not 0 <= policy.local_morning_start_hour < policy.local_morning_end_hour <= 24:
        raise ValueError(f"policy {policy.key}: local morning hours are invalid")
    if any(not 1 <= day <= 28 for day in policy.pay_days_of_month):
        raise ValueError(f"policy {policy.key}: pay days must be 1..28")
    if policy.outage_budget < 0 or (
        policy.outage_budget
        and not 0 < policy.outage_first_delay_minutes <= policy.outage_max_delay_minutes
    ):
        raise ValueError(f"policy {policy.key}: outage budget spacing is invalid")
    daytime = (policy.daytime_start_hour, policy.daytime_end_hour)
    if daytime != (None, None) and not (
        daytime[0] is not None and daytime[1] is not None and 0 <= daytime[0] < daytime[1] <= 24
    ):
        raise ValueError(f"policy {policy.key}: daytime hours are invalid")
    if policy.daytime_start_hour is not None and policy.daytime_end_hour is not None:
        inside = policy.daytime_start_hour <= policy.local_morning_start_hour
        if not (inside and policy.local_morning_end_hour <= policy.daytime_end_hour):
            raise ValueError(f"policy {policy.key}: the local morning must lie in the daytime")


DEFAULT_SEGMENT = "default"


@cache
def _catalog() -> tuple[dict[tuple[str, int], Policy], tuple[_Assignment, ...], frozenset[str]]:
    raw = json.loads(files("billing.dunning").joinpath("data/policies.json").read_text("utf-8"))
    policies = {}
    for item in raw["policies"]:
        policy = _policy_from_json(item)
        if (policy.policy_id, policy.version) in policies:
            raise ValueError(f"duplicate policy {policy.key}")
        policies[(policy.policy_id, policy.version)] = policy
    segments = frozenset(raw["segments"])
    if DEFAULT_SEGMENT not in segments:
        raise ValueError(f"the {DEFAULT_SEGMENT!r} segment must be listed")
    assignments = tuple(_Assignment(**item) for item in raw["assignments"])
    for assignment in assignments:
        if (assignment.policy_id, assignment.version) not in policies:
            raise ValueError(f"assignment names unknown policy {assignment}")
        if assignment.segment != "*" and assignment.segment not in segments:
            raise ValueError(f"assignment names unknown segment {assignment}")
    return policies, assignments, segments


def customer_segments() -> frozenset[str]:
    """The segments a customer may be placed in (``default`` unless told otherwise)."""
    return _catalog()[2]


def load_policy(policy_id: str, version: int) -> Policy:
    """The exact published policy version (invoices already in dunning use this)."""
    try:
        return _catalog()[0][(policy_id, version)]
    except KeyError:
        raise UnknownPolicyError(f"no policy {policy_id}@v{version}") from None


def assignment_generation() -> int:
    """The newest generation of assignments (what a new subscription run uses)."""
    return max(a.generation for a in _catalog()[1])


def policy_for(plan_id: str, segment: str, generation: int | None = None) -> Policy:
    """The policy a new dunning run for this plan and customer segment starts with.

    The most specific assignment wins: plan and segment, then plan, then segment, then
    the default (``*``/``*``); for each, the newest generation not after ``generation``
    (default: the newest), so a workflow started before a generation keeps its policies.
    """
    newest = assignment_generation() if generation is None else generation
    best: tuple[tuple[int, int], _Assignment] | None = None
    for assignment in _catalog()[1]:
        score = assignment.specificity(plan_id, segment)
        if score is None or assignment.generation > newest:
            continue
        rank = (score, assignment.generation)
        if best is None or rank > best[0]:
            best = (rank, assignment)
    if best is None:
        raise UnknownPolicyError(f"no policy assigned for plan {plan_id!r}, segment {segment!r}")
    return load_policy(best[1].policy_id, best[1].version)


def all_policies() -> tuple[Policy, ...]:
    return tuple(_catalog()[0].values())
