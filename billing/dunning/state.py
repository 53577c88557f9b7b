"""The dunning state: everything the scheduler needs to decide the next step, as plain
frozen data (ints, strs, datetimes, tuples, enums) that a workflow can carry through
``continue_as_new``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing.declines import CustomerMessage, DeclineFamily
from billing.dunning.events import CardRef
from billing.dunning.policy import EndAction, InvoiceEndAction, Policy


class Phase(StrEnum):
    SCHEDULED = "scheduled"  # a retry is due at ``due_at``
    ATTEMPTING = "attempting"  # a charge is in flight
    WAITING_FOR_CUSTOMER = "waiting_for_customer"  # until ``due_at``
    PAUSED = "paused"  # by ops, or for good after a customer cancellation
    RECOVERED = "recovered"
    STOPPED = "stopped"


class Trigger(StrEnum):
    """Why a charge was made."""

    INITIAL = "initial_attempt"
    SCHEDULED = "scheduled_retry"
    PAYMENT_METHOD_UPDATED = "payment_method_updated"
    CARD_UPDATER = "card_updater"
    OPS = "ops_retry"
    OUTAGE = "outage_retry"  # under a policy's outage budget: not a scheduled retry
    OUTSIDE = "outside_dunning"  # an outcome reported with no charge decided (e.g. on-session)


IMMEDIATE_TRIGGERS = frozenset({Trigger.PAYMENT_METHOD_UPDATED, Trigger.CARD_UPDATER, Trigger.OPS})
# Retries nobody asked for in person: they keep to the policy's daytime window. A new card
# in the portal and an ops retry run at once.
BACKGROUND_TRIGGERS = frozenset({Trigger.SCHEDULED, Trigger.OUTAGE, Trigger.CARD_UPDATER})


@dataclass(frozen=True)
class Attempt:
    at: datetime
    card: CardRef
    trigger: Trigger
    succeeded: bool
    family: DeclineFamily | None = None
    reason: str | None = None
    network_decline_code: str | None = None
    network_advice_code: str | None = None
    message: CustomerMessage | None = None  # what the customer is told about this decline


@dataclass(frozen=True)
class Ending:
    end_action: EndAction
    invoice_end_action: InvoiceEndAction
    reason: str
    revoke_access_at: datetime


@dataclass(frozen=True)
class DunningState:
    invoice_id: str
    amount: int  # minor units
    currency: str
    policy: Policy  # pinned: the version the invoice started with
    card: CardRef  # the card the next charge uses
    utc_offset_minutes: int
    started_at: datetime
    phase: Phase
    first_failure_at: datetime | None = None
    attempts: tuple[Attempt, ...] = ()
    scheduled_retries: int = 0
    immediate_retries: int = 0
    outage_retries: int = 0  # spent from the policy's outage budget
    due_at: datetime | None = None  # the timer the workflow keeps
    due_reason: str | None = None  # RetryAt / WaitForCustomer / Paused reason
    in_flight: Trigger | None = None
    in_flight_card: CardRef | None = None
    owed_immediate: Trigger | None = None  # an event that arrived while a charge was in flight
    paused_by_ops: bool = False
    cancelled_at: datetime | None = None
    blocked_cards: tuple[str, ...] = ()  # fingerprints that must never be charged again
    last_family: DeclineFamily | None = None
    last_reason: str | None = None
    recovered_at: datetime | None = None
    ending: Ending | None = None

    @property
    def policy_key(self) -> str:
        return self.policy.key

    @property
    def window_end(self) -> datetime:
        """No attempt of any kind after this instant."""
        return (self.first_failure_at or self.started_at) + self.policy.window

    @property
    def access_until(self) -> datetime | None:
        """While past due, access is kept until this instant (None: no failure yet)."""
        if self.first_failure_at is None:
            return None
        return self.first_failure_at + self.policy.grace_period

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.RECOVERED, Phase.STOPPED)

    @property
    def outage_budget_left(self) -> bool:
        """The last decline was an issuer outage and the policy's outage budget has room."""
        return (
            self.last_family is DeclineFamily.GATEWAY_UNAVAILABLE
            and self.outage_retries < self.policy.outage_budget
        )

    def attempts_on(self, card: CardRef) -> tuple[Attempt, ...]:
        return tuple(a for a in self.attempts if a.card.fingerprint == card.fingerprint)
