"""Dunning activities: charge the unpaid invoice, notify the customer, settle the invoice.

Each side effect carries a key derived from the dunning workflow's identity:

    charge       f"{invoice_id}:dunning:{attempt}"      Stripe Idempotency-Key
    notify       notification_key(invoice, kind, n)     notifications row + Message-ID
    mark paid    payment:{invoice_id}:{payment_ref}     InvoiceStore payment key
    void         dunning:{invoice_id}:void              InvoiceStore credit note key

Declines are ordinary results, never exceptions: every attempt that reached the card
network must be fed to the scheduler, which counts it against the network caps.

Before a charge reaches the gateway, the card's attempt ledger (``stores.card_attempts``)
reserves it: a card blocked on any invoice, or capped by the attempts of every invoice on
it, refuses the charge (``refused``: not an attempt, the scheduler waits or stops).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.gateway_errors import to_application_error
from activities.gateway_reconciler import paid_before
from activities.notifications import NotificationReceipt, NotificationRequest, Notifier
from billing.declines import DeclineInfo, classify_decline
from billing.dunning.policy import InvoiceEndAction
from billing.gateway import (
    ChargeDeclined,
    ChargeOutcome,
    ChargeProcessing,
    ChargeRequiresAction,
    ChargeSucceeded,
    GatewayError,
    InvalidGatewayRequest,
    PaymentGateway,
    PaymentIntentStatus,
)
from billing.money import Money
from ledger.invoices import InvoiceStore
from ledger.invoices.errors import InvoiceError
from stores.card_attempts import CardAttemptLedger, CardCharge

# A processing charge is polled this many times, this far apart, before the activity
# fails with a retryable error (the retry re-sends the same idempotent request).
PROCESSING_POLLS = 5
PROCESSING_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class DunningChargeRequest:
    invoice_id: str
    subscription_id: str
    attempt: int  # 1-based attempt number on this invoice
    gateway_customer_id: str
    payment_method_id: str
    amount: int  # minor units
    currency: str
    # The card the scheduler decided for (None in requests recorded before the card
    # attempt ledger: they are not checked against it).
    card_fingerprint: str | None = None
    card_brand: str | None = None
    decided_at: datetime | None = None  # the instant the caps are checked at

    @property
    def idempotency_key(self) -> str:
        return f"{self.invoice_id}:dunning:{self.attempt}"


@dataclass(frozen=True)
class DunningChargeResult:
    outcome: Literal["succeeded", "declined", "refused"]
    payment_intent_id: str | None = None
    amount: int = 0
    decline: DeclineInfo | None = None
    # refused: the card is blocked (None) or its caps allow the next attempt then
    not_before: datetime | None = None


@dataclass(frozen=True)
class MarkPaidRequest:
    invoice_id: str
    payment_ref: str
    amount: int
    at: datetime


@dataclass(frozen=True)
class InvoiceEndRequest:
    invoice_id: str
    action: InvoiceEndAction
    at: datetime
    reason: str


@dataclass(frozen=True)
class InvoiceActionResult:
    applied: bool  # False when no invoice store is configured or nothing was to be done
    credit_note_id: str | None = None


@dataclass(frozen=True)
class UtcOffsetRequest:
    timezone: str  # IANA zone name
    at: datetime


def _authentication_required(brand: str | None) -> DeclineInfo:
    return DeclineInfo(code="authentication_required", card_brand=brand)


class DunningActivities:
    """Built by the worker with its gateway, notifier and (once available) invoice store."""

    def __init__(
        self,
        *,
        gateway: PaymentGateway,
        notifier: Notifier,
        invoices: InvoiceStore | None = None,
        cards: CardAttemptLedger | None = None,
    ) -> None:
        self._gateway = gateway
        self._notifier = notifier
        self._invoices = invoices
        self._cards = cards

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.charge,
            self.notify,
            self.mark_paid,
            self.end_invoice,
            self.utc_offset_minutes,
        ]

    @activity.defn(name="customer.utc_offset_minutes")
    async def utc_offset_minutes(self, request: UtcOffsetRequest) -> int:
        """The customer's UTC offset at ``at`` (0 for an unknown zone). An activity, not
        workflow code: the tz database is read from disk and changes between releases."""
        try:
            offset = request.at.astimezone(ZoneInfo(request.timezone)).utcoffset()
        except (ZoneInfoNotFoundError, ValueError):
            return 0
        return int(offset.total_seconds() // 60) if offset is not None else 0

    @activity.defn(name="dunning_charge")
    async def charge(self, request: DunningChargeRequest) -> DunningChargeResult:
        """One dunning attempt under its own key, once the card's attempt ledger allows
        it; a payment of the invoice the gateway already holds (made but never recorded)
        is the attempt's success instead."""
        card = _card_charge(request)
        if card is not None and self._cards is not None:
            refusal = await asyncio.to_thread(self._cards.reserve, card)
            if refusal is not None:
                return DunningChargeResult("refused", not_before=refusal.not_before)
        result = await self._charge(request)
        if card is not None and self._cards is not None:
            outcome: Literal["succeeded", "declined"] = (
                "succeeded" if result.outcome == "succeeded" else "declined"
            )
            await asyncio.to_thread(self._cards.settle, card, outcome, result.decline)
        return result

    async def _charge(self, request: DunningChargeRequest) -> DunningChargeResult:
        try:
            found = await paid_before(
                self._gateway,
                customer_id=request.gateway_customer_id,
                invoice_id=request.invoice_id,
                amount=Money(request.amount, request.currency),
            )
            if found is not None:
                return DunningChargeResult("succeeded", found.id, found.amount.amount)
            outcome = await self._gateway.charge_off_session(
                customer_id=request.gateway_customer_id,
                payment_method_id=request.payment_method_id,
                amount=Money(request.amount, request.currency),
                idempotency_key=request.idempotency_key,
                metadata={
                    "invoice_id": request.invoice_id,
                    "subscription_id": request.subscription_id,
                    "dunning_attempt": str(request.attempt),
                },
            )
            if isinstance(outcome, ChargeProcessing):
                outcome = await self._await_processing(outcome)
        except InvalidGatewayRequest as exc:
            # The gateway refused the request itself (e.g. a detached payment method):
            # recorded as a failed attempt so the schedule, not a hot loop, decides.
            return DunningChargeResult(
                "declined", decline=DeclineInfo(code=exc.code or "invalid_request")
            )
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        return _result(outcome)

    async def _await_processing(self, outcome: ChargeProcessing) -> ChargeOutcome:
        for _ in range(PROCESSING_POLLS):
            activity.heartbeat(outcome.payment_intent_id)
            await asyncio.sleep(PROCESSING_POLL_SECONDS)
            snapshot = await self._gateway.retrieve_payment_intent(outcome.payment_intent_id)
            if snapshot.status is PaymentIntentStatus.SUCCEEDED:
                return ChargeSucceeded(snapshot.id, snapshot.latest_charge_id, snapshot.amount)
            if snapshot.status is PaymentIntentStatus.REQUIRES_ACTION:
                return ChargeRequiresAction(snapshot.id, snapshot.amount)
            if snapshot.last_error is not None and snapshot.status in (
                PaymentIntentStatus.REQUIRES_PAYMENT_METHOD,
                PaymentIntentStatus.CANCELED,
            ):
                return _declined(snapshot.id, snapshot.amount, snapshot.last_error)
        raise ApplicationError(
            f"charge {outcome.payment_intent_id} is still processing", type="ChargeProcessing"
        )

    @activity.defn(name="dunning_notify")
    async def notify(self, request: NotificationRequest) -> NotificationReceipt:
        return await self._notifier.send(request)

    @activity.defn(name="dunning_mark_paid")
    async def mark_paid(self, request: MarkPaidRequest) -> InvoiceActionResult:
        store = self._invoices
        if store is None:
            activity.logger.warning(
                "no invoice store configured; %s not marked paid", request.invoice_id
            )
            return InvoiceActionResult(applied=False)
        async with _invoice_errors():
            await asyncio.to_thread(
                store.mark_paid,
                request.invoice_id,
                payment_ref=request.payment_ref,
                amount=request.amount,
                at=request.at,
            )
        return InvoiceActionResult(applied=True)

    @activity.defn(name="dunning_end_invoice")
    async def end_invoice(self, request: InvoiceEndRequest) -> InvoiceActionResult:
        store = self._invoices
        if request.action is InvoiceEndAction.LEAVE_OPEN:
            return InvoiceActionResult(applied=False)
        if store is None:
            activity.logger.warning("no invoice store configured; %s left open", request.invoice_id)
            return InvoiceActionResult(applied=False)
        async with _invoice_errors():
            if request.action is InvoiceEndAction.MARK_UNCOLLECTIBLE:
                await asyncio.to_thread(store.mark_uncollectible, request.invoice_id, at=request.at)
                return InvoiceActionResult(applied=True)
            note = await asyncio.to_thread(
                store.void,
                request.invoice_id,
                key=f"dunning:{request.invoice_id}:void",
                reason=request.reason,
                at=request.at,
            )
        return InvoiceActionResult(applied=True, credit_note_id=note.id)


@asynccontextmanager
async def _invoice_errors() -> AsyncIterator[None]:
    """Invoice state errors will not heal by retrying: fail the activity for good."""
    try:
        yield
    except InvoiceError as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc


def _card_charge(request: DunningChargeRequest) -> CardCharge | None:
    if request.card_fingerprint is None or request.decided_at is None:
        return None
    return CardCharge(
        attempt_key=request.idempotency_key,
        customer_id=request.gateway_customer_id,
        payment_method_id=request.payment_method_id,
        brand=request.card_brand or "default",
        invoice_id=request.invoice_id,
        subscription_id=request.subscription_id,
        path="dunning",
        at=request.decided_at,
        fingerprint=request.card_fingerprint,
    )


def _declined(payment_intent_id: str | None, amount: Money, decline: DeclineInfo) -> ChargeDeclined:
    return ChargeDeclined(payment_intent_id, None, amount, decline, classify_decline(decline))


def _result(outcome: ChargeOutcome) -> DunningChargeResult:
    if isinstance(outcome, ChargeSucceeded):
        return DunningChargeResult(
            "succeeded", payment_intent_id=outcome.payment_intent_id, amount=outcome.amount.amount
        )
    if isinstance(outcome, ChargeRequiresAction):
        # An off-session charge the issuer wants authenticated: the customer confirms it
        # on-session in the portal; never retried automatically.
        return DunningChargeResult(
            "declined",
            payment_intent_id=outcome.payment_intent_id,
            amount=outcome.amount.amount,
            decline=_authentication_required(None),
        )
    if isinstance(outcome, ChargeDeclined):
        return DunningChargeResult(
            "declined",
            payment_intent_id=outcome.payment_intent_id,
            amount=outcome.amount.amount,
            decline=outcome.decline,
        )
    raise ApplicationError(
        f"charge {outcome.payment_intent_id} is still processing", type="ChargeProcessing"
    )
