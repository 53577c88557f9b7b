"""What the dunning workflow tells the scheduler. Every event is a frozen dataclass of
plain values (the Temporal pydantic data converter carries them as they are)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from billing.declines import DeclineInfo
from billing.dunning.policy import EndAction, InvoiceEndAction, Policy


@dataclass(frozen=True)
class CardRef:
    """The credential network caps are counted against: a card fingerprint (preferred,
    it survives re-attachment) or the payment method id."""

    fingerprint: str
    brand: str  # visa | mastercard | amex | ... (Stripe's card.brand)


@dataclass(frozen=True)
class Started:
    """Dunning begins for an unpaid invoice. With ``first_decline`` the renewal charge has
    already failed at ``started_at``; without it the first decision is one charge now."""

    invoice_id: str
    amount: int  # minor units
    currency: str
    card: CardRef
    utc_offset_minutes: int  # the customer's local offset, for local-morning retries
    started_at: datetime
    policy: Policy
    first_decline: DeclineInfo | None = None
    kind: Literal["started"] = "started"


@dataclass(frozen=True)
class AttemptFailed:
    at: datetime
    info: DeclineInfo
    card: CardRef | None = None  # defaults to the card the attempt was decided for
    kind: Literal["attempt_failed"] = "attempt_failed"


@dataclass(frozen=True)
class AttemptSucceeded:
    at: datetime
    kind: Literal["attempt_succeeded"] = "attempt_succeeded"


@dataclass(frozen=True)
class AttemptRefused:
    """The card's attempt ledger refused the charge before it reached the gateway: not an
    attempt. ``not_before`` None: the card is blocked (a hard decline on any invoice);
    else the network caps, counted over every invoice on the card, allow the next attempt
    only then (another run took the last one)."""

    at: datetime
    not_before: datetime | None = None
    kind: Literal["attempt_refused"] = "attempt_refused"


@dataclass(frozen=True)
class PaymentMethodUpdated:
    """The customer attached a new default payment method: one immediate retry."""

    card: CardRef
    at: datetime
    kind: Literal["payment_method_updated"] = "payment_method_updated"


@dataclass(frozen=True)
class CardUpdaterEvent:
    """The network account updater refreshed the card (``payment_method.automatically_updated``):
    one immediate retry. ``card`` is the refreshed reference when it changed."""

    at: datetime
    card: CardRef | None = None
    kind: Literal["card_updater"] = "card_updater"


@dataclass(frozen=True)
class CustomerCancelled:
    """The customer cancelled: no charge is ever started after this."""

    at: datetime
    kind: Literal["customer_cancelled"] = "customer_cancelled"


@dataclass(frozen=True)
class CancellationUndone:
    """The customer undid a cancellation before it took effect: dunning picks up where
    it paused, with every earlier attempt still counting against the network caps."""

    at: datetime
    kind: Literal["cancellation_undone"] = "cancellation_undone"


@dataclass(frozen=True)
class OpsPause:
    at: datetime
    kind: Literal["ops_pause"] = "ops_pause"


@dataclass(frozen=True)
class OpsResume:
    at: datetime
    kind: Literal["ops_resume"] = "ops_resume"


@dataclass(frozen=True)
class OpsRetryNow:
    at: datetime
    kind: Literal["ops_retry_now"] = "ops_retry_now"


@dataclass(frozen=True)
class OpsEnd:
    at: datetime
    action: EndAction | None = None  # None: the policy's end action
    invoice_action: InvoiceEndAction | None = None  # None: the policy's invoice end action
    kind: Literal["ops_end"] = "ops_end"


@dataclass(frozen=True)
class TimerFired:
    """The durable timer for the last RetryAt / WaitForCustomer / Paused deadline fired."""

    at: datetime
    kind: Literal["timer_fired"] = "timer_fired"


DunningEvent = (
    Started
    | AttemptFailed
    | AttemptSucceeded
    | AttemptRefused
    | PaymentMethodUpdated
    | CardUpdaterEvent
    | CustomerCancelled
    | CancellationUndone
    | OpsPause
    | OpsResume
    | OpsRetryNow
    | OpsEnd
    | TimerFired
)
