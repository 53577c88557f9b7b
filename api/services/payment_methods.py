"""Card set-up for the portal: the browser talks to the gateway, the API sees tokens only.

1. ``create_setup_intent``: a SetupIntent for the customer's gateway customer; only its
   ``client_secret`` goes to the page, which confirms it with Stripe.js
   (``confirmCardSetup``). 3-D Secure is requested up front for customers in regulated
   regions (``billing.sca.setup_requires_3ds``).
2. ``attach_token``: the page sends back the resulting ``pm_…`` token; it must be
   unattached or already this customer's, and is attached and made the default.

A payment waiting for 3-D Secure (the workflow's pending action) is completed the same
way: ``intent_to_confirm`` reads the PaymentIntent from the gateway and hands the page
its ``client_secret`` alone, for Stripe.js ``confirmCardPayment``; the secret is never
kept in workflow state (queries would expose it) nor logged.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from activities.stripe_gateway import StripeGateway
from api.errors import ApiError
from api.services.customers import gateway_error
from billing.gateway import (
    GatewayError,
    InvalidGatewayRequest,
    PaymentIntentStatus,
    PaymentMethodDetails,
    SetupIntentResult,
    ThreeDSecureRequest,
)
from billing.sca import setup_requires_3ds
from dunwell.settings import Settings

# localstripe accepts any publishable key of this shape; Stripe needs the account's own.
LOCAL_PUBLISHABLE_KEY = "pk_test_dunwell_localstripe"


def publishable_key(settings: Settings) -> str:
    configured = getattr(settings, "stripe_publishable_key", None)
    if isinstance(configured, str) and configured:
        return configured
    return LOCAL_PUBLISHABLE_KEY


def stripe_js_url(settings: Settings) -> str:
    if settings.stripe_api_base:
        return f"{settings.stripe_api_base.rstrip('/')}/js.stripe.com/v3/"
    return "https://js.stripe.com/v3/"


def three_d_secure_for(country: str) -> ThreeDSecureRequest:
    return ThreeDSecureRequest.ANY if setup_requires_3ds(country) else ThreeDSecureRequest.AUTOMATIC


async def create_setup_intent(
    *,
    gateway: StripeGateway,
    gateway_customer_id: str,
    country: str,
    subscription_id: str,
) -> tuple[SetupIntentResult, ThreeDSecureRequest]:
    request_3ds = three_d_secure_for(country)
    try:
        # Each press of "update card" is a new intent; the key guards this call's retries.
        result = await gateway.create_setup_intent(
            customer_id=gateway_customer_id,
            idempotency_key=f"dunwell:seti:{subscription_id}:{secrets.token_hex(8)}",
            request_three_d_secure=request_3ds,
            metadata={"dunwell_subscription_id": subscription_id},
        )
    except GatewayError as err:
        raise gateway_error(err) from err
    return result, request_3ds


async def check_token(
    *, gateway: StripeGateway, gateway_customer_id: str, payment_method_id: str
) -> PaymentMethodDetails:
    """Read ``pm_…`` at the gateway, changing nothing; 422 when it is unknown or belongs
    to another customer."""
    refused = ApiError(
        422, "invalid_payment_method", "the payment method token is not usable for this customer"
    )
    try:
        details = await gateway.retrieve_payment_method(payment_method_id)
    except InvalidGatewayRequest as err:
        raise refused from err
    except GatewayError as err:
        raise gateway_error(err) from err
    if details.customer_id not in (None, gateway_customer_id):
        raise refused
    return details


async def attach_token(
    *,
    gateway: StripeGateway,
    gateway_customer_id: str,
    payment_method_id: str,
    key: str,
    make_default: bool = True,
) -> PaymentMethodDetails:
    """Attach ``pm_…`` to the gateway customer; 422 when it is unknown or someone else's."""
    refused = ApiError(
        422, "invalid_payment_method", "the payment method token is not usable for this customer"
    )
    try:
        details = await gateway.retrieve_payment_method(payment_method_id)
        if details.customer_id not in (None, gateway_customer_id):
            raise refused
        details = await gateway.attach_payment_method(
            payment_method_id=payment_method_id,
            customer_id=gateway_customer_id,
            idempotency_key=f"{key}:attach",
        )
        if make_default:
            await gateway.set_default_payment_method(
                customer_id=gateway_customer_id,
                payment_method_id=payment_method_id,
                idempotency_key=f"{key}:default",
            )
    except InvalidGatewayRequest as err:
        raise refused from err
    except GatewayError as err:
        raise gateway_error(err) from err
    return details


@dataclass(frozen=True, slots=True)
class IntentToConfirm:
    """What the portal may know of a PaymentIntent: its status and its client secret."""

    status: PaymentIntentStatus
    client_secret: str

    def __repr__(self) -> str:  # the secret stays out of reprs, tracebacks and logs
        return f"IntentToConfirm(status={self.status!s})"


async def intent_to_confirm(
    *, gateway: StripeGateway, payment_intent_id: str, gateway_customer_id: str
) -> IntentToConfirm:
    """Read the intent the workflow named; it must be the gateway customer's own."""
    try:
        intent = await gateway.retrieve_payment_intent(payment_intent_id)
    except GatewayError as err:
        raise gateway_error(err) from err
    if intent.customer_id != gateway_customer_id or not intent.client_secret:
        raise ApiError(
            502,
            "gateway_error",
            "the payment gateway returned a payment that cannot be confirmed by this customer",
        )
    return IntentToConfirm(status=intent.status, client_secret=intent.client_secret)
