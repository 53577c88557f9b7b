"""``gateway_reconciler.verify``: a payment is checked at the gateway before it is recorded.

The workflow hands in the PaymentIntent an event named and what the invoice expects;
the activity reads the intent back from the gateway (``billing.payment_verification``
compares them) and, when they disagree, opens a reconciliation exception that ops
see in the exceptions queue. It records no payment itself: the workflow records one
only when the answer is a match.

Idempotent: a retry reads the gateway again, and the exception is opened once per
(intent, invoice) key. An intent the gateway does not know is a ``missing_at_gateway``
mismatch; a gateway that cannot be reached raises (Temporal retries), so an outage is
never mistaken for a mismatch.

``paid_before`` is the other half of believing the gateway: before a charge under a new
idempotency key (a dunning retry, a retry on a new card, an on-session attempt), the
charge activities ask whether the gateway already holds a succeeded payment of the same
amount for the invoice (one that went through but was never recorded), and record that
instead of charging again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from temporalio import activity

from activities.gateway_errors import to_application_error
from billing.gateway import (
    GatewayError,
    IdempotencyConflict,
    InvalidGatewayRequest,
    PaymentGateway,
    PaymentIntentSnapshot,
)
from billing.money import Money
from billing.payment_verification import ExpectedPayment, finding, payment_mismatches
from billing.reconciliation.model import Finding

ACTOR = "gateway_reconciler.verify"


class ExceptionSink(Protocol):
    """Where mismatches go (``ledger.reconciliation.exceptions.ExceptionStore``)."""

    def open(self, findings: Sequence[Finding], *, actor: str, at: datetime) -> int: ...


@dataclass(frozen=True)
class VerifyPaymentRequest:
    payment_intent_id: str
    expected: ExpectedPayment
    at: datetime  # when the workflow saw the event: the exception's opening time
    event_id: str | None = None
    event_type: str | None = None


@dataclass(frozen=True)
class VerifyPaymentResult:
    payment_intent_id: str
    matched: bool
    mismatches: list[str]
    exception_class: str | None = None  # of the exception opened (or found open)


class GatewayReconciler:
    """Built with the worker's gateway and the exceptions queue; each method is one
    activity."""

    def __init__(self, gateway: PaymentGateway, exceptions: ExceptionSink) -> None:
        self._gateway = gateway
        self._exceptions = exceptions

    @activity.defn(name="gateway_reconciler.verify")
    async def verify(self, request: VerifyPaymentRequest) -> VerifyPaymentResult:
        intent = await self._intent(request.payment_intent_id)
        mismatches = payment_mismatches(intent, request.expected)
        if not mismatches:
            return VerifyPaymentResult(request.payment_intent_id, True, [])
        found = finding(
            request.payment_intent_id,
            intent,
            request.expected,
            mismatches,
            event_id=request.event_id,
            event_type=request.event_type,
        )
        await asyncio.to_thread(self._exceptions.open, [found], actor=ACTOR, at=request.at)
        activity.logger.warning(
            "payment %s not recorded: the gateway disagrees (%s)",
            request.payment_intent_id,
            ", ".join(mismatches),
        )
        return VerifyPaymentResult(
            request.payment_intent_id,
            False,
            [str(m) for m in mismatches],
            exception_class=str(found.cls),
        )

    async def _intent(self, payment_intent_id: str) -> PaymentIntentSnapshot | None:
        try:
            return await self._gateway.retrieve_payment_intent(payment_intent_id)
        except IdempotencyConflict as exc:
            raise to_application_error(exc) from exc
        except InvalidGatewayRequest:
            return None  # no such intent (404) or not one this account can read
        except GatewayError as exc:
            raise to_application_error(exc) from exc


async def paid_before(
    gateway: PaymentGateway, *, customer_id: str, invoice_id: str, amount: Money
) -> PaymentIntentSnapshot | None:
    """The succeeded PaymentIntent of this customer that already paid ``amount`` for the
    invoice, if the gateway holds one. Gateway errors propagate (the caller's activity
    translates them): a charge is never made because the look-up could not be."""
    found = await gateway.find_succeeded_payment(customer_id=customer_id, invoice_id=invoice_id)
    if found is None:
        return None
    if found.amount != amount:
        activity.logger.warning(
            "invoice %s: succeeded intent %s of another amount; charging as asked",
            invoice_id,
            found.id,
        )
        return None
    activity.logger.warning(
        "invoice %s already paid at the gateway by %s: recorded, not charged again",
        invoice_id,
        found.id,
    )
    return found
