"""Request and response bodies of the server and portal APIs.

Request models (``...In``) refuse unknown fields, so a misspelt field is a 422 rather
than silently ignored; response models (``...Out``) describe exactly what is returned.
Amounts are integer minor units of the named ISO 4217 currency.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from billing.dunning import customer_segments

# The largest row id PostgreSQL's bigint holds: cursors beyond it are refused with 422.
ROW_ID_MAX = 2**63 - 1

_NUMBER = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


def _not_a_number(value: object) -> object:
    """Pydantic reads a number as seconds since 1970; the API documents ISO 8601 only."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO 8601 date-time with a time zone, not a number")
    return value


# A date-time with a time zone, written in ISO 8601 (as the OpenAPI schema says).
IsoDatetime = Annotated[AwareDatetime, BeforeValidator(_not_a_number)]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    """Pydantic reads ``0`` or ``"1700000000"`` as a date too; the API documents ISO 8601."""
    if isinstance(value, str) and not _DATE.fullmatch(value):
        raise ValueError("expected an ISO 8601 date such as 2026-03-31")
    if isinstance(value, int | float):
        raise ValueError("expected an ISO 8601 date such as 2026-03-31, not a number")
    return value


# A calendar date written YYYY-MM-DD (as the OpenAPI schema says).
IsoDate = Annotated[date, BeforeValidator(_iso_date)]

PlanId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,99}$")]
Currency = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z]{3}$", to_upper=True, min_length=3, max_length=3)
]
PaymentMethodToken = Annotated[
    str,
    StringConstraints(pattern=r"^pm_[A-Za-z0-9_]{1,200}$"),
    Field(description="A gateway payment method token (`pm_…`), never card data"),
]
ObjectId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
PaymentIntentId = Annotated[
    str,
    StringConstraints(pattern=r"^pi_[A-Za-z0-9_]{1,200}$"),
    Field(description="A gateway PaymentIntent id (`pi_…`)"),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- customers -------------------------------------------------------------------------


class AddressIn(_Request):
    country: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$", to_upper=True)] = Field(
        description="ISO 3166-1 alpha-2"
    )
    state: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    city: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    line1: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    line2: Annotated[str, StringConstraints(max_length=300)] | None = None


class CustomerIn(_Request):
    email: Annotated[
        str, StringConstraints(pattern=r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$", max_length=320)
    ]
    name: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    address: AddressIn
    tax_id: Annotated[str, StringConstraints(min_length=2, max_length=64)] | None = Field(
        default=None, description="VAT or other tax ID; EU VAT IDs are checked for format"
    )
    timezone: str = Field(default="UTC", description="IANA zone, for showing local dates only")
    segment: str = Field(
        default="default",
        description="Customer segment; with the plan it picks the dunning policy "
        "(billing/dunning/data/policies.json lists the segments)",
    )

    @field_validator("segment")
    @classmethod
    def _known_segment(cls, value: str) -> str:
        known = customer_segments()
        if value not in known:
            raise ValueError(f"unknown segment {value!r}; one of {', '.join(sorted(known))}")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


class AddressOut(BaseModel):
    country: str
    state: str | None
    postal_code: str
    city: str
    line1: str
    line2: str | None


class CustomerOut(BaseModel):
    id: str
    email: str
    name: str
    address: AddressOut
    tax_id: str | None
    timezone: str
    segment: str
    gateway_customer_id: str | None
    created_at: datetime


# --- subscriptions ---------------------------------------------------------------------


class SubscriptionIn(_Request):
    customer_id: ObjectId
    plan_id: PlanId
    currency: Currency
    payment_method_id: PaymentMethodToken | None = None
    trial: bool = Field(default=False, description="Start with the plan's trial, no card needed")
    backdate_start_date: AwareDatetime | None = Field(
        default=None,
        description="Start the subscription in the past (at most one billing period back): "
        "the first period is billed at once, and its renewal comes at the backdated "
        "period end",
    )


class TransitionOut(BaseModel):
    from_status: str
    to_status: str
    cause: str
    at: datetime


class InvoiceBriefOut(BaseModel):
    invoice_id: str
    number: str | None
    purpose: str
    currency: str
    period_start: datetime
    period_end: datetime
    total: int
    tax_total: int
    status: str


class PlanChangeOut(BaseModel):
    change_id: str
    from_plan: str
    to_plan: str
    kind: str
    requested_at: datetime
    effective_at: datetime
    outcome: str
    invoice_id: str | None = None
    credit_note_id: str | None = None
    reason: str | None = Field(
        default=None,
        description="Why a change was reverted: a decline reason, authentication_failed or "
        "authentication_timeout",
    )


class UpgradeAuthenticationOut(BaseModel):
    """A plan change waiting for the customer's 3-D Secure before ``deadline``."""

    change_id: str
    to_plan_id: str
    payment_intent_id: str
    amount: int = Field(description="The proration charge in minor units")
    currency: str
    deadline: datetime


class PaymentProblemOut(BaseModel):
    """Why the latest unpaid invoice is unpaid, in the customer's words."""

    invoice_id: str
    amount: int
    currency: str
    decline_code: str | None = Field(description="The gateway's decline code, if any")
    message: str = Field(description="What to tell the customer (never the hidden reason)")


class PendingActionOut(BaseModel):
    """A payment the customer must confirm on-session (3-D Secure) before ``deadline``."""

    status: Literal["waiting", "confirmed", "expired"]
    invoice_id: str
    amount: int = Field(description="Amount due in minor units")
    currency: str
    deadline: datetime


class CardOut(BaseModel):
    """The default card's display details; nothing else about the card is ever returned."""

    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


class AccessOut(BaseModel):
    """``billing.entitlements.access`` at the time of the request."""

    has_access: bool
    reason: str = Field(
        description="trialing, active, past_due_in_grace, past_due, unpaid, canceled, "
        "incomplete or incomplete_expired"
    )
    features: dict[str, bool | int] = Field(description="The plan's features in force now")
    grace_until: datetime | None = Field(description="past_due_in_grace: access ends then")
    ended_at: datetime | None = Field(description="canceled: when access ended")
    next_change_at: datetime | None = Field(description="When access next changes, if known")
    next_change: str | None = Field(description="access_ends or plan_changes")


class SubscriptionOut(BaseModel):
    id: str
    customer_id: str
    workflow_id: str
    plan_id: str
    plan_name: str | None
    currency: str
    amount: int | None = Field(description="Price per period in minor units")
    interval: str | None
    status: str
    current_period_start: datetime | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    pending_plan_id: str | None
    payment_method_id: str | None
    payment_method: CardOut | None = Field(
        description="The default card's display details, when known"
    )
    pending_action: PendingActionOut | None = Field(
        description="The latest payment that needed the customer's confirmation (3-D Secure), "
        "if any; `status` waiting means the customer must act before `deadline`"
    )
    has_access: bool = Field(description="Whether the customer may use the product now")
    access: AccessOut | None = Field(default=None, description="Access, its reason and features")
    grace_until: datetime | None = Field(
        description="A past-due subscription keeps access until then"
    )
    payment_problem: PaymentProblemOut | None = None
    migrating_to: str | None = Field(
        default=None, description="An immediate plan change waiting for its charge"
    )
    upgrade_authentication: UpgradeAuthenticationOut | None = None
    transitions: list[TransitionOut]
    recent_invoices: list[InvoiceBriefOut]
    plan_changes: list[PlanChangeOut]
    created_at: datetime


class SubscriptionListOut(BaseModel):
    items: list[SubscriptionOut]


# --- invoices and credit notes ---------------------------------------------------------


class InvoiceOut(BaseModel):
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


class InvoiceListOut(BaseModel):
    items: list[InvoiceOut]


class CreditNoteOut(BaseModel):
    id: str
    number: str
    invoice_id: str
    currency: str
    purpose: str
    reason: str
    subtotal: int
    tax_total: int
    total: int
    created_at: datetime


class CreditNoteListOut(BaseModel):
    items: list[CreditNoteOut]


# --- portal sessions -------------------------------------------------------------------


class PortalSessionIn(_Request):
    customer_id: ObjectId


class PortalSessionOut(BaseModel):
    token: str = Field(description="Bearer token for the portal API; treat as a secret")
    url: str = Field(description="The portal page, with the token")
    expires_at: datetime


# --- portal actions --------------------------------------------------------------------


class PlanChangeIn(_Request):
    plan_id: PlanId


class TaxComponentOut(BaseModel):
    jurisdiction: str
    tax_type: str | None
    rate_ppm: int
    taxable_amount: int = 0
    tax_amount: int
    reason: str


class PreviewLineOut(BaseModel):
    kind: Literal["credit", "charge", "next_period"]
    description: str
    plan_id: str
    amount: int = Field(description="As priced; credits are negative")
    amount_excluding_tax: int
    tax_amount: int
    amount_including_tax: int
    tax: list[TaxComponentOut]


class PlanChangePreviewOut(BaseModel):
    subscription_id: str
    from_plan_id: str
    to_plan_id: str
    kind: Literal["upgrade", "downgrade", "lateral"]
    effective: Literal["immediately", "period_end", "trial_swap", "withdraw_scheduled"]
    effective_at: datetime
    currency: str
    lines: list[PreviewLineOut]
    subtotal: int
    tax_total: int
    total: int = Field(description="What is charged when the change takes effect")
    tax_jurisdiction: str | None
    legal_mentions: list[str]


class SetupIntentOut(BaseModel):
    client_secret: str = Field(description="For Stripe.js confirmCardSetup in the browser")
    publishable_key: str
    stripe_js_url: str
    three_d_secure: Literal["any", "automatic"]


class PaymentMethodIn(_Request):
    payment_method_id: PaymentMethodToken


class PortalConfigOut(BaseModel):
    customer_id: str
    customer_name: str
    expires_at: datetime
    plans: list[PlanOut]


class PlanPriceOut(BaseModel):
    currency: str
    amount: int


class PlanOut(BaseModel):
    id: str
    name: str
    tier: int
    interval: str
    interval_count: int
    prices: list[PlanPriceOut]


PortalConfigOut.model_rebuild()


class PlanChangeResultOut(BaseModel):
    outcome: str = Field(
        description="applied | scheduled | withdrawn | swapped_in_trial | reverted (charge "
        "failed) | requires_action (the bank asks for 3-D Secure: run Stripe.js "
        "confirmCardPayment(client_secret), then report to .../change-plan/authentication)"
    )
    change_id: str | None = None
    plan_id: str
    pending_plan_id: str | None
    effective_at: datetime | None
    invoice_id: str | None
    amount_charged: int
    reason: str | None = None
    payment_intent_id: str | None = None
    client_secret: str | None = Field(
        default=None, description="For Stripe.js confirmCardPayment; only with requires_action"
    )
    publishable_key: str | None = None
    stripe_js_url: str | None = None
    subscription: SubscriptionOut


class UpgradeAuthenticationIn(_Request):
    payment_intent_id: PaymentIntentId
    outcome: Literal["succeeded", "failed"] = Field(
        description="What Stripe.js said; the gateway's record of the payment decides"
    )


class CancellationOut(BaseModel):
    cancel_at_period_end: bool
    access_until: datetime | None
    subscription: SubscriptionOut


class PaymentMethodOut(BaseModel):
    payment_method_id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    subscription: SubscriptionOut


class PaymentConfirmationOut(BaseModel):
    outcome: Literal["paid", "requires_action"] = Field(
        description="paid: nothing left to do; requires_action: complete the payment with "
        "Stripe.js confirmCardPayment(client_secret), then call .../confirm-payment/complete"
    )
    payment_intent_id: str
    client_secret: str | None = Field(
        description="For Stripe.js confirmCardPayment in the browser; only with requires_action"
    )
    challenge: bool = Field(description="Whether the issuer is expected to challenge")
    exemption: str | None = Field(description="The SCA exemption asked for, if any")
    reason: str | None
    publishable_key: str
    stripe_js_url: str
    subscription: SubscriptionOut


class ConfirmPaymentIn(_Request):
    payment_intent_id: PaymentIntentId


class PaymentCompletedOut(BaseModel):
    pending_action: PendingActionOut
    subscription: SubscriptionOut
