"""Re-sync from the gateway: the current state of the objects a subscription depends on.

Gateway events can be late, lost or out of order; the gateway's current object state is
the truth. When a sequence gap times out, or a customer says a payment was confirmed,
the subscription workflow asks for the PaymentIntents (and the card on file) it cares
about and applies what it finds. Reads, and one write: cancelling a PaymentIntent the
customer did not authenticate (a portal upgrade reverted after its 3-D Secure failed or
timed out), so that the abandoned intent can no longer be completed later.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

from activities.gateway_errors import to_application_error
from billing.gateway import (
    GatewayError,
    InvalidGatewayRequest,
    PaymentGateway,
    PaymentMethodDetails,
)

INVOICE_METADATA_KEY = "dunwell_invoice_id"


@dataclass(frozen=True)
class ResyncRequest:
    subscription_id: str
    payment_intent_ids: list[str] = field(default_factory=list)
    payment_method_id: str | None = None


@dataclass(frozen=True)
class IntentState:
    """A PaymentIntent as the gateway has it now (no client secret: it is not needed)."""

    id: str
    status: str
    amount: int
    currency: str
    invoice_id: str | None
    subscription_id: str | None
    latest_charge_id: str | None


@dataclass(frozen=True)
class ResyncResult:
    intents: list[IntentState]
    payment_method: PaymentMethodDetails | None


@dataclass(frozen=True)
class CancelIntentRequest:
    payment_intent_id: str
    key: str  # the gateway's idempotency key, from the workflow's own identity


class GatewaySyncActivities:
    """Built with the worker's gateway; each method is one activity."""

    def __init__(self, gateway: PaymentGateway) -> None:
        self._gateway = gateway

    @activity.defn(name="gateway.resync")
    async def resync(self, request: ResyncRequest) -> ResyncResult:
        try:
            intents = [
                await self._intent(payment_intent_id)
                for payment_intent_id in dict.fromkeys(request.payment_intent_ids)
            ]
            card = (
                await self._gateway.retrieve_payment_method(request.payment_method_id)
                if request.payment_method_id
                else None
            )
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        return ResyncResult(intents=intents, payment_method=card)

    async def _intent(self, payment_intent_id: str) -> IntentState:
        snap = await self._gateway.retrieve_payment_intent(payment_intent_id)
        return IntentState(
            id=snap.id,
            status=str(snap.status),
            amount=snap.amount.amount,
            currency=snap.amount.currency,
            invoice_id=snap.metadata.get(INVOICE_METADATA_KEY),
            subscription_id=snap.metadata.get("dunwell_subscription_id"),
            latest_charge_id=snap.latest_charge_id,
        )

    @activity.defn(name="gateway.describe_payment_method")
    async def describe_payment_method(self, payment_method_id: str) -> PaymentMethodDetails:
        try:
            return await self._gateway.retrieve_payment_method(payment_method_id)
        except GatewayError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name="gateway.cancel_intent")
    async def cancel_intent(self, request: CancelIntentRequest) -> IntentState:
        """Cancel an intent unless it settled meanwhile; the intent as the gateway has it
        afterwards decides (a customer who authenticated at the last second has paid)."""
        try:
            await self._gateway.cancel_payment_intent(
                payment_intent_id=request.payment_intent_id, idempotency_key=request.key
            )
        except InvalidGatewayRequest:
            pass  # succeeded or canceled already: the read below says which
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        try:
            return await self._intent(request.payment_intent_id)
        except GatewayError as exc:
            raise to_application_error(exc) from exc
