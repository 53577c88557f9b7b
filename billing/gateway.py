"""The payment gateway port: what Dunwell's workflows and API ask of a card gateway.

Results carry only gateway tokens and ids (``cus_…``, ``pm_…``, ``seti_…``, ``pi_…``) and
non-sensitive card details (brand, last4, expiry, country); never a card number or CVC.

Every write takes an ``idempotency_key`` chosen by the caller from its own identity
(e.g. ``f"{invoice_id}:attempt:{n}"``), so a retried activity reaches the gateway as the
same request. Adapters refuse a write without one.

Errors an adapter raises (each names its Temporal ``ApplicationError`` type)::

    GatewayError                the base; ``retryable`` says whether to try the call again
    ├── GatewayUnavailable      an infrastructure failure, never the card's doing: a
    │                           timeout, a connection failure, 5xx, a rate limit, a bad
    │                           or under-privileged API key. Retried with backoff for as
    │                           long as it lasts (ops are alerted); never a decline, so
    │                           it never starts dunning nor reaches the customer
    ├── CardDeclined            the issuer or network refused; carries the classification.
    │                           Never retried automatically: every retry counts against
    │                           the card networks' reattempt caps, so dunning decides.
    ├── InvalidGatewayRequest   the request itself is wrong (4xx): do not retry
    │   └── IdempotencyConflict the key was reused with different parameters
    └── MissingIdempotencyKey   a write without a usable key, refused before any I/O

Charges do not raise ``CardDeclined``: they return a ``ChargeOutcome`` value, so a
decline is an ordinary result the dunning workflow can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, Protocol, TypeVar

from billing.declines import (
    Classification,
    CustomerMessage,
    DeclineFamily,
    DeclineInfo,
    classify_decline,
)
from billing.money import Money

# The metadata keys that name the invoice a PaymentIntent pays: the renewal and portal
# charges stamp the first, the dunning charges the second.
INVOICE_METADATA_KEYS = ("dunwell_invoice_id", "invoice_id")

# Stripe documents a 255-character ceiling for idempotency keys.
MAX_IDEMPOTENCY_KEY_LENGTH = 255


class ThreeDSecureRequest(StrEnum):
    """Whether to ask for 3-D Secure when a card is set up (Stripe's names)."""

    AUTOMATIC = "automatic"  # only when the issuer or the regulation requires it
    ANY = "any"  # whenever the card supports it
    CHALLENGE = "challenge"  # ask the issuer to challenge the cardholder


class PaymentIntentStatus(StrEnum):
    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"


@dataclass(frozen=True, slots=True)
class SetupIntentResult:
    id: str
    status: str  # requires_payment_method | requires_action | succeeded | canceled | ...
    client_secret: str  # handed to the portal page for confirmCardSetup; never logged
    customer_id: str | None
    payment_method_id: str | None


@dataclass(frozen=True, slots=True)
class PaymentMethodDetails:
    id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    country: str | None
    customer_id: str | None
    fingerprint: str | None = None  # same card, same fingerprint: spots duplicates


@dataclass(frozen=True, slots=True)
class ChargeSucceeded:
    payment_intent_id: str
    charge_id: str | None
    amount: Money
    kind: Literal["succeeded"] = "succeeded"


@dataclass(frozen=True, slots=True)
class ChargeProcessing:
    """Accepted but not final yet (asynchronous methods); a webhook settles it."""

    payment_intent_id: str
    amount: Money
    kind: Literal["processing"] = "processing"


@dataclass(frozen=True, slots=True)
class ChargeRequiresAction:
    """The customer must authenticate on-session (3-D Secure).

    Outcomes land in workflow history, so none carries the intent's client secret: the
    portal reads it from the gateway, for the customer the intent belongs to, while that
    customer is on the page. ``client_secret`` stays only so that histories written by
    the first version of this type, which carried it, still decode; it is always None.
    """

    payment_intent_id: str
    amount: Money
    kind: Literal["requires_action"] = "requires_action"
    client_secret: str | None = None  # first version only; never set now


@dataclass(frozen=True, slots=True)
class ChargeDeclined:
    payment_intent_id: str | None
    charge_id: str | None
    amount: Money
    decline: DeclineInfo
    classification: Classification
    kind: Literal["declined"] = "declined"
    # The first version of this type carried the client secret when the customer could
    # still finish the intent on-session; kept so those histories decode, never set now
    # (see ChargeRequiresAction).
    client_secret: str | None = None


ChargeOutcome = ChargeSucceeded | ChargeProcessing | ChargeRequiresAction | ChargeDeclined


@dataclass(frozen=True, slots=True)
class PaymentIntentSnapshot:
    id: str
    status: PaymentIntentStatus
    amount: Money
    customer_id: str | None
    payment_method_id: str | None
    latest_charge_id: str | None
    last_error: DeclineInfo | None
    client_secret: str | None
    metadata: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RefundResult:
    id: str
    payment_intent_id: str | None
    charge_id: str | None
    amount: Money
    status: str  # pending | succeeded | failed | canceled | requires_action
    metadata: Mapping[str, str] | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ChargeSnapshot:
    """A charge as the gateway holds it: what refunds and disputes are checked against."""

    id: str
    payment_intent_id: str | None
    customer_id: str | None
    amount: Money
    status: str  # succeeded | pending | failed


@dataclass(frozen=True, slots=True)
class BalanceTransaction:
    id: str
    type: str  # charge | refund | payout | stripe_fee | adjustment | ...
    reporting_category: str | None
    amount: Money
    fee: Money
    net: Money
    status: str  # available | pending
    source_id: str | None  # ch_…, re_…, po_…
    created: datetime
    available_on: datetime


@dataclass(frozen=True, slots=True)
class Payout:
    id: str
    amount: Money
    status: str  # paid | pending | in_transit | canceled | failed
    balance_transaction_id: str | None
    created: datetime
    arrival_date: datetime


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a gateway list, newest first; pass ``next_cursor`` as ``starting_after``."""

    items: tuple[T, ...]
    has_more: bool
    next_cursor: str | None


class GatewayErrorType(StrEnum):
    """``ApplicationError.type`` of each gateway error, for workflows to match on."""

    UNAVAILABLE = "GatewayUnavailable"
    CARD_DECLINED = "CardDeclined"
    INVALID_REQUEST = "InvalidGatewayRequest"
    IDEMPOTENCY_CONFLICT = "IdempotencyConflict"
    MISSING_IDEMPOTENCY_KEY = "MissingIdempotencyKey"
    UNKNOWN = "GatewayError"


class GatewayError(Exception):
    error_type: GatewayErrorType = GatewayErrorType.UNKNOWN
    retryable: bool = False

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class InfrastructureFailure(StrEnum):
    """What kind of infrastructure failure made the gateway unavailable (what ops see)."""

    AUTHENTICATION = "authentication"  # the API key was refused (401)
    PERMISSION = "permission"  # the key may not do this (403)
    CONNECTION = "connection"  # no answer: refused, reset, timed out
    RATE_LIMIT = "rate_limit"  # 429
    SERVER_ERROR = "server_error"  # 5xx


class GatewayUnavailable(GatewayError):
    error_type = GatewayErrorType.UNAVAILABLE
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        failure: InfrastructureFailure = InfrastructureFailure.SERVER_ERROR,
    ) -> None:
        super().__init__(message, code=code)
        self.failure = failure


def infrastructure_failure(error_type: str | None, details: Any) -> InfrastructureFailure | None:
    """The infrastructure failure an ``ApplicationError`` of ``error_type`` with these
    details reports, or None when it is not one (a decline, a wrong request)."""
    if error_type != GatewayErrorType.UNAVAILABLE:
        return None
    failure = details.get("failure") if isinstance(details, Mapping) else None
    if isinstance(failure, str) and failure in InfrastructureFailure.__members__.values():
        return InfrastructureFailure(failure)
    return InfrastructureFailure.SERVER_ERROR


class InvalidGatewayRequest(GatewayError):
    error_type = GatewayErrorType.INVALID_REQUEST


class IdempotencyConflict(InvalidGatewayRequest):
    error_type = GatewayErrorType.IDEMPOTENCY_CONFLICT


class MissingIdempotencyKey(GatewayError, ValueError):
    error_type = GatewayErrorType.MISSING_IDEMPOTENCY_KEY


class CardDeclined(GatewayError):
    error_type = GatewayErrorType.CARD_DECLINED

    def __init__(
        self,
        decline: DeclineInfo,
        *,
        payment_intent_id: str | None = None,
        charge_id: str | None = None,
        setup_intent_id: str | None = None,
    ) -> None:
        self.decline = decline
        self.classification = classify_decline(decline)
        self.payment_intent_id = payment_intent_id
        self.charge_id = charge_id
        self.setup_intent_id = setup_intent_id
        # The message names the family and code only; it is safe to log and never
        # shown to the customer (that is classification.message).
        super().__init__(
            f"card declined: {self.classification.family}/{self.classification.reason}",
            code=decline.decline_code or decline.code,
        )


def require_idempotency_key(key: object) -> str:
    """The key itself, or ``MissingIdempotencyKey`` when it cannot be used."""
    if not isinstance(key, str) or not key.strip():
        raise MissingIdempotencyKey("a gateway write needs an idempotency key")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise MissingIdempotencyKey(
            f"idempotency key longer than {MAX_IDEMPOTENCY_KEY_LENGTH} characters"
        )
    return key


def declined_details(exc: CardDeclined) -> dict[str, Any]:
    """JSON-safe description of a decline, carried as ``ApplicationError`` details."""
    return {
        "family": str(exc.classification.family),
        "reason": exc.classification.reason,
        "message": str(exc.classification.message),
        "decline": {
            "code": exc.decline.code,
            "decline_code": exc.decline.decline_code,
            "advice_code": exc.decline.advice_code,
            "network_decline_code": exc.decline.network_decline_code,
            "network_advice_code": exc.decline.network_advice_code,
            "card_brand": exc.decline.card_brand,
        },
        "payment_intent_id": exc.payment_intent_id,
        "charge_id": exc.charge_id,
        "setup_intent_id": exc.setup_intent_id,
    }


def decline_from_details(details: Mapping[str, Any]) -> tuple[Classification, DeclineInfo]:
    """Inverse of ``declined_details``, for a workflow that caught a ``CardDeclined``."""
    raw = details["decline"]
    decline = DeclineInfo(
        code=raw.get("code"),
        decline_code=raw.get("decline_code"),
        advice_code=raw.get("advice_code"),
        network_decline_code=raw.get("network_decline_code"),
        network_advice_code=raw.get("network_advice_code"),
        card_brand=raw.get("card_brand"),
    )
    classification = Classification(
        family=DeclineFamily(details["family"]),
        reason=details["reason"],
        message=CustomerMessage(details["message"]),
    )
    return classification, decline


class PaymentGateway(Protocol):
    """The card gateway as Dunwell's activities and API use it."""

    async def create_customer(
        self,
        *,
        idempotency_key: str,
        email: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str: ...

    async def create_setup_intent(
        self,
        *,
        customer_id: str,
        idempotency_key: str,
        request_three_d_secure: ThreeDSecureRequest = ThreeDSecureRequest.AUTOMATIC,
        metadata: Mapping[str, str] | None = None,
    ) -> SetupIntentResult: ...

    async def retrieve_setup_intent(self, setup_intent_id: str) -> SetupIntentResult: ...

    async def retrieve_payment_method(self, payment_method_id: str) -> PaymentMethodDetails: ...

    async def list_payment_methods(self, customer_id: str) -> tuple[PaymentMethodDetails, ...]: ...

    async def attach_payment_method(
        self, *, payment_method_id: str, customer_id: str, idempotency_key: str
    ) -> PaymentMethodDetails: ...

    async def detach_payment_method(
        self, *, payment_method_id: str, idempotency_key: str
    ) -> PaymentMethodDetails: ...

    async def set_default_payment_method(
        self, *, customer_id: str, payment_method_id: str, idempotency_key: str
    ) -> None: ...

    async def default_payment_method(self, customer_id: str) -> str | None: ...

    async def charge_off_session(
        self,
        *,
        customer_id: str,
        payment_method_id: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ChargeOutcome: ...

    async def charge_on_session(
        self,
        *,
        customer_id: str,
        payment_method_id: str,
        amount: Money,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> ChargeOutcome: ...

    async def retrieve_payment_intent(self, payment_intent_id: str) -> PaymentIntentSnapshot: ...

    async def find_succeeded_payment(
        self, *, customer_id: str, invoice_id: str
    ) -> PaymentIntentSnapshot | None: ...

    async def cancel_payment_intent(
        self, *, payment_intent_id: str, idempotency_key: str
    ) -> PaymentIntentSnapshot: ...

    async def create_refund(
        self,
        *,
        payment_intent_id: str,
        idempotency_key: str,
        amount: Money | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult: ...

    async def retrieve_refund(self, refund_id: str) -> RefundResult: ...

    async def retrieve_charge(self, charge_id: str) -> ChargeSnapshot: ...

    async def list_refunds(self, charge_id: str) -> tuple[RefundResult, ...]: ...

    async def list_balance_transactions(
        self,
        *,
        limit: int = 100,
        starting_after: str | None = None,
        payout_id: str | None = None,
        created_gte: datetime | None = None,
    ) -> Page[BalanceTransaction]: ...

    async def list_payouts(
        self,
        *,
        limit: int = 100,
        starting_after: str | None = None,
        created_gte: datetime | None = None,
    ) -> Page[Payout]: ...
