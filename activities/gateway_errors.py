"""Stripe SDK errors -> Dunwell's gateway errors -> Temporal ``ApplicationError``.

Errors are classified once, here, from the SDK's exception class and the error object's
structured fields (``code``, ``decline_code``, ``advice_code``, ``network_decline_code``,
``network_advice_code``); message text is never read.

    stripe.CardError                         -> CardDeclined (classified by billing.declines)
    stripe.APIConnectionError (incl. timeout),
    stripe.RateLimitError, stripe.APIError,
    stripe.AuthenticationError (401),
    stripe.PermissionError (403)             -> GatewayUnavailable (retryable), with the
                                                InfrastructureFailure ops are alerted of
    stripe.IdempotencyError                  -> IdempotencyConflict
    stripe.InvalidRequestError               -> InvalidGatewayRequest

A bad or revoked API key is an infrastructure failure, not a wrong request: nothing about
the invoice or the card is at fault, and the same request succeeds once the key is fixed.
A 429 is retried unless its ``Stripe-Should-Retry`` header says ``false`` (Stripe's own
word that the same request will not succeed); then it is a wrong request.
"""

from __future__ import annotations

from typing import Any

import stripe
from temporalio.exceptions import ApplicationError

from billing.declines import DeclineInfo
from billing.gateway import (
    CardDeclined,
    GatewayError,
    GatewayUnavailable,
    IdempotencyConflict,
    InfrastructureFailure,
    InvalidGatewayRequest,
    declined_details,
)

# The Stripe SDK exception of each infrastructure failure (subclasses first).
_INFRASTRUCTURE: tuple[tuple[type[stripe.StripeError], InfrastructureFailure], ...] = (
    (stripe.AuthenticationError, InfrastructureFailure.AUTHENTICATION),
    (stripe.PermissionError, InfrastructureFailure.PERMISSION),
    (stripe.RateLimitError, InfrastructureFailure.RATE_LIMIT),
    (stripe.APIConnectionError, InfrastructureFailure.CONNECTION),
    (stripe.APIError, InfrastructureFailure.SERVER_ERROR),
)

_DECLINE_FIELDS = (
    "code",
    "decline_code",
    "advice_code",
    "network_decline_code",
    "network_advice_code",
)


def field_of(obj: Any, key: str) -> Any:
    """A field of a StripeObject, a dict, or None."""
    if obj is None:
        return None
    if isinstance(obj, dict):  # StripeObject is a dict subclass as well
        return obj.get(key)
    return getattr(obj, key, None)


def id_of(value: Any) -> str | None:
    """An expandable field holds either an id or the expanded object."""
    if value is None or isinstance(value, str):
        return value
    found = field_of(value, "id")
    return found if isinstance(found, str) else None


def _card_brand(payment_method: Any) -> str | None:
    brand = field_of(field_of(payment_method, "card"), "brand")
    return brand if isinstance(brand, str) else None


def decline_info_from_error_object(error: Any, payment_intent: Any = None) -> DeclineInfo:
    """Read a decline from an error object, filling gaps from the intent's last error."""
    last_error = field_of(payment_intent, "last_payment_error")
    values: dict[str, str | None] = {}
    for field in _DECLINE_FIELDS:
        value = field_of(error, field)
        if value is None:
            value = field_of(last_error, field)
        values[field] = value if isinstance(value, str) else None
    brand = _card_brand(field_of(error, "payment_method")) or _card_brand(
        field_of(last_error, "payment_method")
    )
    return DeclineInfo(card_brand=brand, **values)


def translate_stripe_error(exc: stripe.StripeError) -> GatewayError:
    """The one place a Stripe SDK exception becomes a Dunwell gateway error."""
    if isinstance(exc, stripe.CardError):
        error = exc.error
        payment_intent = field_of(error, "payment_intent")
        return CardDeclined(
            decline_info_from_error_object(error, payment_intent),
            payment_intent_id=id_of(payment_intent),
            charge_id=id_of(field_of(error, "charge"))
            or id_of(field_of(payment_intent, "latest_charge")),
            setup_intent_id=id_of(field_of(error, "setup_intent")),
        )
    code = exc.code if isinstance(exc.code, str) else None
    if isinstance(exc, stripe.RateLimitError) and should_retry_header(exc) is False:
        return InvalidGatewayRequest(
            "gateway rate limit: Stripe-Should-Retry says the request will not succeed",
            code=code,
        )
    for kind, failure in _INFRASTRUCTURE:
        if isinstance(exc, kind):
            return GatewayUnavailable(
                f"gateway unavailable: {type(exc).__name__} ({failure})", code=code, failure=failure
            )
    if isinstance(exc, stripe.IdempotencyError):
        return IdempotencyConflict("idempotency key reused with other parameters", code=code)
    if isinstance(exc, stripe.InvalidRequestError):
        return InvalidGatewayRequest(
            f"gateway rejected the request: {type(exc).__name__} ({code or 'no code'})",
            code=code,
        )
    return GatewayError(f"unexpected gateway error: {type(exc).__name__}", code=code)


def should_retry_header(exc: stripe.StripeError) -> bool | None:
    """What the response's ``Stripe-Should-Retry`` header says (None: no header)."""
    headers = exc.headers or {}
    for name, value in headers.items():
        if name.lower() == "stripe-should-retry":
            return {"true": True, "false": False}.get(str(value).strip().lower())
    return None


def to_application_error(exc: GatewayError) -> ApplicationError:
    """The Temporal error an activity raises for a gateway error."""
    details: list[Any] = []
    if isinstance(exc, CardDeclined):
        details.append(declined_details(exc))
    elif isinstance(exc, GatewayUnavailable):
        details.append({"code": exc.code, "failure": str(exc.failure)})
    elif exc.code is not None:
        details.append({"code": exc.code})
    return ApplicationError(
        str(exc),
        *details,
        type=str(exc.error_type),
        non_retryable=not exc.retryable,
    )
