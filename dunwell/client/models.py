"""What the server API answers, as typed, immutable models.

The shapes are the API's own (``GET /openapi.json``); fields the API adds later are
ignored, so an older client keeps working against a newer server. Amounts are integer
minor units of ``currency``; every time is an aware UTC datetime.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Address(_Model):
    country: str
    postal_code: str
    city: str
    line1: str
    state: str | None = None
    line2: str | None = None


class Customer(_Model):
    id: str
    email: str
    name: str
    address: Address
    tax_id: str | None
    timezone: str
    segment: str
    gateway_customer_id: str | None
    created_at: datetime


class Access(_Model):
    """Whether a subscription grants access now, why, its features and the next change."""

    has_access: bool
    reason: str
    features: dict[str, bool | int]
    grace_until: datetime | None
    ended_at: datetime | None
    next_change_at: datetime | None
    next_change: str | None


class SubscriptionAccess(Access):
    subscription_id: str
    customer_id: str
    plan_id: str
    status: str


class Entitlements(_Model):
    """A customer's access and features over all of their subscriptions."""

    customer_id: str
    has_access: bool
    features: dict[str, bool | int]
    subscriptions: list[SubscriptionAccess]


class Card(_Model):
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


class PendingAction(_Model):
    status: Literal["waiting", "confirmed", "expired"]
    invoice_id: str
    amount: int
    currency: str
    deadline: datetime


class PaymentProblem(_Model):
    invoice_id: str
    amount: int
    currency: str
    decline_code: str | None
    message: str


class UpgradeAuthentication(_Model):
    change_id: str
    to_plan_id: str
    payment_intent_id: str
    amount: int
    currency: str
    deadline: datetime


class Transition(_Model):
    from_status: str
    to_status: str
    cause: str
    at: datetime


class InvoiceBrief(_Model):
    invoice_id: str
    number: str | None
    purpose: str
    currency: str
    period_start: datetime
    period_end: datetime
    total: int
    tax_total: int
    status: str


class PlanChange(_Model):
    change_id: str
    from_plan: str
    to_plan: str
    kind: str
    requested_at: datetime
    effective_at: datetime
    outcome: str
    invoice_id: str | None = None
    credit_note_id: str | None = None
    reason: str | None = None


class Subscription(_Model):
    id: str
    customer_id: str
    workflow_id: str
    plan_id: str
    plan_name: str | None
    currency: str
    amount: int | None
    interval: str | None
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    pending_plan_id: str | None
    payment_method_id: str | None
    payment_method: Card | None
    pending_action: PendingAction | None
    has_access: bool
    access: Access | None = None
    grace_until: datetime | None
    payment_problem: PaymentProblem | None = None
    migrating_to: str | None = None
    upgrade_authentication: UpgradeAuthentication | None = None
    transitions: list[Transition]
    recent_invoices: list[InvoiceBrief]
    plan_changes: list[PlanChange]
    created_at: datetime


class Invoice(_Model):
    id: str
    number: str | None
    status: str
    subscription_id: str | None
    currency: str
    subtotal: int | None
    tax_total: int | None
    total: int | None
    amount_paid: int
    amount_remaining: int
    amount_credited: int
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    finalized_at: datetime | None


class PortalSession(_Model):
    """A short-lived portal session; ``token`` and ``url`` are secrets for one customer."""

    token: str = Field(repr=False)
    url: str = Field(repr=False)
    expires_at: datetime


class Endpoint(_Model):
    """A URL that receives Dunwell's signed events (``status``: enabled, disabled or
    failing, the last when deliveries were given up)."""

    id: str
    url: str
    event_types: list[str]
    description: str
    status: str
    created_at: datetime
    status_changed_at: datetime
    status_reason: str | None


class CreatedEndpoint(Endpoint):
    """A registered endpoint with its signing secret, shown only in this answer."""

    secret: str = Field(repr=False)


class RotatedSecret(_Model):
    """The endpoint's new signing secret; the previous ones sign on until the time given."""

    secret: str = Field(repr=False)
    previous_secrets_expire_at: datetime


class Event(_Model):
    """An event Dunwell sent to the SaaS backend, verified."""

    id: str
    type: str
    created: AwareDatetime
    data: dict[str, Any]
