"""Refund activities: make a refund ops asked for at the gateway, and mirror the refunds
of a charge the gateway holds (made from Dunwell or in the Stripe dashboard).

Both trust the gateway's record over any message about it: a refund is booked only
after it is read back from the gateway (``refunds.retrieve`` / the charge's refund
list) and found to return the invoice's own payment, in its currency, in a state that
moved money (``succeeded`` or ``pending``). The store books each gateway refund once
(keyed by its id), so a webhook replayed, a retried activity, or the ops path and the
webhook path racing for the same refund all book it once. A refund the ledger cannot
book (a payment it never recorded, more than remains refundable, another currency)
books nothing and opens a reconciliation exception for ops, and so does a refund booked
while ``pending`` that the gateway later reports ``failed`` or ``canceled`` (ops
decide the correction; its credit note stands until then).

Idempotent at the gateway too: the refund ops asked for is created under the key
``dunwell-refund:<reservation key>`` and carries that key in its metadata, so the
webhook that reports it finds the reservation instead of booking a second refund.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio import activity

from activities.gateway_errors import to_application_error
from billing.gateway import (
    GatewayError,
    GatewayUnavailable,
    InvalidGatewayRequest,
    PaymentGateway,
    RefundResult,
)
from billing.money import Money
from billing.reconciliation.model import ExceptionClass, Finding
from ledger.invoices import InvoiceError, InvoiceStore
from ledger.reconciliation.exceptions import ExceptionStore

ACTOR = "refunds"
REFUND_KEY_METADATA = "dunwell_refund_key"
INVOICE_METADATA = "dunwell_invoice_id"
# A refund in one of these states moved (or is moving) money back to the customer.
BOOKED_STATUSES = frozenset({"succeeded", "pending"})


def gateway_key(key: str) -> str:
    return f"dunwell-refund:{key}"


@dataclass(frozen=True)
class RefundOutcome:
    key: str
    status: str  # recorded | failed | mismatch
    refund_id: str | None = None
    credit_note_id: str | None = None
    amount: int = 0
    detail: str | None = None


@dataclass(frozen=True)
class ChargeRefunds:
    charge_id: str
    recorded: int  # refunds booked by this call
    known: int  # refunds booked before
    exceptions: int


class RefundActivities:
    def __init__(
        self, gateway: PaymentGateway, invoices: InvoiceStore, exceptions: ExceptionStore
    ) -> None:
        self._gateway = gateway
        self._invoices = invoices
        self._exceptions = exceptions

    @activity.defn(name="refunds.issue")
    async def issue(self, key: str) -> RefundOutcome:
        """Make the refund reserved under ``key`` at the gateway and book it."""
        held = await asyncio.to_thread(self._invoices.get_refund, key)
        if held.status != "requested":
            return RefundOutcome(
                key, held.status, held.refund_id, held.credit_note_id, held.amount, held.failure
            )
        try:
            made = await self._gateway.create_refund(
                payment_intent_id=held.payment_ref,
                idempotency_key=gateway_key(key),
                amount=Money(held.amount, held.currency),
                metadata={INVOICE_METADATA: held.invoice_id, REFUND_KEY_METADATA: key},
            )
            found = await self._gateway.retrieve_refund(made.id)
        except GatewayUnavailable as exc:
            raise to_application_error(exc) from exc
        except InvalidGatewayRequest as exc:
            # The gateway refused (a payment it cannot refund): nothing moved.
            failed = await asyncio.to_thread(
                self._invoices.fail_refund, key, failure=str(exc)[:2000], at=_now()
            )
            return RefundOutcome(key, failed.status, detail=failed.failure)
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        problem = _mismatch(found, held.payment_ref, Money(held.amount, held.currency))
        if problem is not None:
            await self._open(found, held.invoice_id, problem, ExceptionClass.AMOUNT)
            return RefundOutcome(key, "mismatch", found.id, amount=held.amount, detail=problem)
        return await self._record(found, held.invoice_id, held.payment_ref, key)

    @activity.defn(name="refunds.sync_charge")
    async def sync_charge(self, charge_id: str) -> ChargeRefunds:
        """Book every refund of the charge the gateway holds and the ledger does not."""
        try:
            charge = await self._gateway.retrieve_charge(charge_id)
            refunds = await self._gateway.list_refunds(charge_id)
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        payment_ref = charge.payment_intent_id or charge.id
        invoice_id = await asyncio.to_thread(self._invoices.invoice_paid_by, payment_ref)
        recorded = known = exceptions = 0
        for refund in refunds:
            booked = await asyncio.to_thread(self._invoices.refund_by_gateway_id, refund.id)
            if booked is not None:
                known += 1
                if refund.status not in BOOKED_STATUSES:
                    # Booked while pending, failed since: ops decide (a credit note stays).
                    await self._open(
                        refund,
                        booked.invoice_id,
                        f"booked refund is {refund.status} at the gateway",
                        ExceptionClass.STATUS,
                    )
                    exceptions += 1
                continue
            if refund.status not in BOOKED_STATUSES:
                continue
            if invoice_id is None:
                await self._open(
                    refund,
                    None,
                    f"charge {charge_id} pays no invoice the ledger recorded",
                    ExceptionClass.MISSING_IN_LEDGER,
                )
                exceptions += 1
                continue
            problem = _mismatch(refund, payment_ref, None, charge_currency=charge.amount.currency)
            if problem is not None:
                await self._open(refund, invoice_id, problem, ExceptionClass.CURRENCY)
                exceptions += 1
                continue
            key = (refund.metadata or {}).get(REFUND_KEY_METADATA)
            if key is not None and (refund.metadata or {}).get(INVOICE_METADATA) != invoice_id:
                key = None  # not a reservation of this invoice: booked as the gateway's own
            outcome = await self._record(refund, invoice_id, payment_ref, key)
            if outcome.status == "recorded":
                recorded += 1
            else:
                exceptions += 1
        return ChargeRefunds(charge_id, recorded, known, exceptions)

    async def _record(
        self, refund: RefundResult, invoice_id: str, payment_ref: str, key: str | None
    ) -> RefundOutcome:
        try:
            view = await asyncio.to_thread(
                self._invoices.record_refund,
                refund_id=refund.id,
                invoice_id=invoice_id,
                amount=refund.amount.amount,
                currency=refund.amount.currency,
                payment_ref=payment_ref,
                at=_now(),
                key=key,
            )
        except InvoiceError as exc:
            await self._open(refund, invoice_id, str(exc), ExceptionClass.AMOUNT)
            return RefundOutcome(key or refund.id, "mismatch", refund.id, detail=str(exc))
        return RefundOutcome(
            view.key, view.status, view.refund_id, view.credit_note_id, view.amount
        )

    async def _open(
        self, refund: RefundResult, invoice_id: str | None, problem: str, cls: ExceptionClass
    ) -> None:
        activity.logger.warning("refund %s not booked: %s", refund.id, problem)
        finding = Finding(
            cls=cls,
            key=f"refund:{cls.value}:{refund.id}",
            currency=refund.amount.currency,
            amount=refund.amount.amount,
            gateway_ref=refund.id,
            evidence={
                "check": "refunds",
                "problem": problem,
                "invoice": invoice_id,
                "gateway": {
                    "status": refund.status,
                    "amount": refund.amount.amount,
                    "currency": refund.amount.currency,
                    "payment_intent": refund.payment_intent_id,
                    "charge": refund.charge_id,
                },
            },
        )
        await asyncio.to_thread(self._exceptions.open, [finding], actor=ACTOR, at=_now())


def _mismatch(
    refund: RefundResult,
    payment_ref: str,
    expected: Money | None,
    *,
    charge_currency: str | None = None,
) -> str | None:
    """Why the gateway's refund is not the one expected, None when it is."""
    if refund.status not in BOOKED_STATUSES:
        return f"the gateway's refund is {refund.status}"
    if refund.payment_intent_id is not None and refund.payment_intent_id != payment_ref:
        return f"the refund returns {refund.payment_intent_id}, not {payment_ref}"
    if expected is not None and refund.amount != expected:
        return f"the gateway refunded {refund.amount.amount} {refund.amount.currency}"
    if charge_currency is not None and refund.amount.currency != charge_currency:
        return f"the refund is in {refund.amount.currency}, the charge in {charge_currency}"
    return None


def _now() -> datetime:
    return datetime.now(UTC)
