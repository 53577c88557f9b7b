"""Billing activities: the subscription workflow's only way to tax, invoice and charge.

Each side effect carries a key derived from the workflow's own identity: invoices by
``sub:<id>:period:<start>`` or ``sub:<id>:change:<update id>``, charges by
``<invoice id>:attempt:<n>``, so a retried activity finds the first result instead of
doing the work twice. An attempt after the first (a new key) first asks the gateway for
a payment of the invoice it already holds, and returns that instead of charging again. Declines are returned as ``ChargeDeclined`` values; only gateway
failures raise (as ``ApplicationError``, via ``to_application_error``).

The request and result types live here so the workflow can import them with the
activity names; they are plain dataclasses for the pydantic data converter.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.card_attempts import record_charge
from activities.gateway_errors import to_application_error
from activities.gateway_reconciler import paid_before
from activities.gateway_sync import GatewaySyncActivities
from billing.catalog import Catalog, CustomerProfile
from billing.gateway import (
    ChargeOutcome,
    ChargeSucceeded,
    GatewayError,
    PaymentGateway,
    PaymentMethodDetails,
)
from billing.money import Money
from ledger.invoices import (
    CustomerTaxDetails,
    DraftLine,
    InvoiceError,
    InvoiceStore,
    InvoiceView,
)
from ledger.rate_change_notes import RateChangePolicy, carry_rate_changes
from stores.card_attempts import CardAttemptLedger
from tax.engine import TaxEngine, aquote
from tax.model import (
    Address,
    ExemptionCertificate,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxCustomer,
    TaxQuote,
)

T = TypeVar("T")

LineKind = Literal["subscription", "proration_credit", "proration_charge"]

# How long a worker quotes with the registrations it last read from the compliance
# ledger. Reading them for every quote was a tenth of a renewal's database time; a
# registration recorded while the worker runs applies to quotes from this long after.
REGISTRATIONS_TTL = timedelta(seconds=30)


@dataclass(frozen=True)
class InvoiceLineInput:
    line_id: str
    description: str
    amount: int  # signed minor units; proration credits are negative
    tax_inclusive: bool
    kind: LineKind = "subscription"
    plan_id: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


@dataclass(frozen=True)
class TaxQuoteRequest:
    customer: CustomerProfile
    currency: str
    lines: list[InvoiceLineInput]
    at: datetime


@dataclass(frozen=True)
class CreateInvoiceRequest:
    key: str
    subscription_id: str
    customer: CustomerProfile
    currency: str
    lines: list[InvoiceLineInput]
    period_start: datetime
    period_end: datetime
    quote: TaxQuote
    at: datetime


@dataclass(frozen=True)
class IssueInvoiceRequest:
    """Quote tax on ``lines`` at ``at`` and issue the invoice with that quote."""

    key: str
    subscription_id: str
    customer: CustomerProfile
    currency: str
    lines: list[InvoiceLineInput]
    period_start: datetime
    period_end: datetime
    at: datetime

    def tax_request(self) -> TaxQuoteRequest:
        return TaxQuoteRequest(
            customer=self.customer, currency=self.currency, lines=self.lines, at=self.at
        )

    def with_quote(self, quote: TaxQuote) -> CreateInvoiceRequest:
        return CreateInvoiceRequest(
            key=self.key,
            subscription_id=self.subscription_id,
            customer=self.customer,
            currency=self.currency,
            lines=self.lines,
            period_start=self.period_start,
            period_end=self.period_end,
            quote=quote,
            at=self.at,
        )


@dataclass(frozen=True)
class InvoiceSummary:
    invoice_id: str
    number: str | None
    status: str
    currency: str
    subtotal: int
    tax_total: int
    total: int
    amount_remaining: int


@dataclass(frozen=True)
class ChargeRequest:
    subscription_id: str
    invoice_id: str
    attempt: int
    gateway_customer_id: str
    payment_method_id: str
    amount: int
    currency: str

    @property
    def idempotency_key(self) -> str:
        return f"{self.invoice_id}:attempt:{self.attempt}"


@dataclass(frozen=True)
class ChargeAndRecordRequest:
    """Charge an invoice and, when the charge succeeds, record the payment at ``at``."""

    charge: ChargeRequest
    at: datetime


@dataclass(frozen=True)
class ChargeTarget:
    """Whom to charge an invoice that is about to be issued, and which attempt it is."""

    gateway_customer_id: str
    payment_method_id: str
    attempt: int = 1


@dataclass(frozen=True)
class BillRequest:
    """Issue the invoice and, when something is due and a card is given, charge it."""

    invoice: IssueInvoiceRequest
    charge: ChargeTarget | None

    def charge_request(self, invoice: InvoiceSummary) -> ChargeAndRecordRequest:
        """The charge of the invoice's total: a retry finds the invoice paid by this very
        charge, and the same amount under the same key gets the gateway's first answer."""
        assert self.charge is not None
        issued = self.invoice
        return ChargeAndRecordRequest(
            ChargeRequest(
                subscription_id=issued.subscription_id,
                invoice_id=invoice.invoice_id,
                attempt=self.charge.attempt,
                gateway_customer_id=self.charge.gateway_customer_id,
                payment_method_id=self.charge.payment_method_id,
                amount=invoice.total,
                currency=invoice.currency,
            ),
            issued.at,
        )


@dataclass(frozen=True)
class BillResult:
    """The issued invoice and what charging it gave: an outcome, the type of a
    definitive charge error, or neither (nothing was due, or no card was given)."""

    invoice: InvoiceSummary
    outcome: ChargeOutcome | None = None
    charge_error: str | None = None


@dataclass(frozen=True)
class MarkPaidRequest:
    invoice_id: str
    payment_ref: str
    amount: int
    at: datetime


@dataclass(frozen=True)
class VoidInvoiceRequest:
    invoice_id: str
    key: str
    reason: str
    at: datetime


@dataclass(frozen=True)
class CreditNoteSummary:
    credit_note_id: str
    number: str | None
    amount: int


@dataclass(frozen=True)
class ProrationRecordRequest:
    audit: dict[str, Any]
    key: str
    invoice_id: str
    at: datetime


@dataclass(frozen=True)
class PaymentMethodRequest:
    gateway_customer_id: str
    payment_method_id: str
    key: str


def tax_customer(
    customer: CustomerProfile, certificates: Sequence[ExemptionCertificate] = ()
) -> TaxCustomer:
    """The engine's view of the customer, with the exemption certificates recorded for
    them (the engine applies those valid on the quote day and records the others)."""
    address = customer.address
    return TaxCustomer(
        billing_address=Address(
            country=address.country,
            region=address.state,
            postal_code=address.postal_code,
            city=address.city,
            line1=address.line1,
            line2=address.line2,
        ),
        vat_id=customer.tax_id,
        exemption_certificates=tuple(certificates),
        customer_ref=customer.customer_id,
    )


def _behavior(line: InvoiceLineInput) -> TaxBehavior:
    return TaxBehavior.INCLUSIVE if line.tax_inclusive else TaxBehavior.EXCLUSIVE


def _summary(view: InvoiceView) -> InvoiceSummary:
    return InvoiceSummary(
        invoice_id=str(view.id),
        number=view.number,
        status=str(view.status),
        currency=view.currency,
        subtotal=view.subtotal,
        tax_total=view.tax_total,
        total=view.total,
        amount_remaining=view.amount_remaining,
    )


def _non_retryable(exc: Exception) -> ApplicationError:
    return ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True)


async def _in_thread(work: Callable[[], T]) -> T:
    """Run a blocking store call off the event loop. Invoice errors are final (the
    request itself is wrong); anything else, e.g. contention, is retried by Temporal."""
    try:
        return await asyncio.to_thread(work)
    except InvoiceError as exc:
        raise _non_retryable(exc) from exc


@runtime_checkable
class RegistrationSource(Protocol):
    """Where the seller's tax registrations are kept (the compliance ledger)."""

    def registrations(self) -> list[Registration]: ...


@runtime_checkable
class CertificateSource(Protocol):
    """Where customers' exemption certificates are kept (the compliance ledger)."""

    def exemption_certificates(
        self, customer_id: str, *, known_at: datetime | None = None
    ) -> tuple[ExemptionCertificate, ...]: ...


class NoCertificates:
    """No customer holds an exemption certificate (tests that quote without a database)."""

    def exemption_certificates(
        self, customer_id: str, *, known_at: datetime | None = None
    ) -> tuple[ExemptionCertificate, ...]:
        return ()


class BillingActivities:
    """Built once per worker with its clients; each method is one activity."""

    def __init__(
        self,
        *,
        invoices: InvoiceStore,
        tax_engine: TaxEngine,
        gateway: PaymentGateway,
        registrations: Sequence[Registration] | RegistrationSource,
        catalog: Catalog,
        certificates: CertificateSource,
        rate_changes: RateChangePolicy | None = None,
        registrations_ttl: timedelta = REGISTRATIONS_TTL,
        clock: Callable[[], float] = time.monotonic,
        cards: CardAttemptLedger | None = None,
    ) -> None:
        self._invoices = invoices
        # Every charge is recorded per card, so dunning's caps count it.
        self._cards = cards
        self._tax = tax_engine
        self._gateway = gateway
        # A fixed list (tests) or the compliance ledger, read again once what was read
        # is older than the TTL, so a registration recorded while the worker runs applies.
        self._registrations = registrations
        self._registrations_ttl = registrations_ttl.total_seconds()
        self._clock = clock
        self._read: tuple[float, tuple[Registration, ...]] | None = None
        self._catalog = catalog
        # Read for every quote, as recorded up to the quote's instant: a certificate is
        # per customer and a renewal quotes each customer once per period, so a cache
        # would hold little, and a retried quote must see what the first attempt saw.
        self._certificates = certificates
        # With the built-in engine: a rate change inside the period that just ended is
        # carried into the next period's invoice step (``ledger.rate_change_notes``).
        self._rate_changes = rate_changes
        # Registered with the billing activities so every worker that charges can re-sync.
        self.sync = GatewaySyncActivities(gateway)

    async def _current_registrations(self) -> Sequence[Registration]:
        source = self._registrations
        if not isinstance(source, RegistrationSource):
            return tuple(source)
        now = self._clock()
        if self._read is None or now - self._read[0] >= self._registrations_ttl:
            self._read = (now, tuple(await asyncio.to_thread(source.registrations)))
        return self._read[1]

    @activity.defn(name="billing.load_catalog")
    async def load_catalog(self, version: int) -> Catalog:
        """The worker's catalog; a workflow asking for a newer version than it holds fails."""
        if version > self._catalog.version:
            raise ApplicationError(
                f"catalog version {version} requested, worker has {self._catalog.version}",
                type="CatalogVersionUnavailable",
            )
        return self._catalog

    @activity.defn(name="billing.quote_tax")
    async def quote_tax(self, request: TaxQuoteRequest) -> TaxQuote:
        lines = [
            TaxableLine(
                line_id=line.line_id,
                amount=line.amount,
                currency=request.currency,
                tax_behavior=_behavior(line),
                description=line.description,
            )
            for line in request.lines
        ]
        try:
            registrations = await self._current_registrations()
            certificates = await asyncio.to_thread(
                self._certificates.exemption_certificates,
                request.customer.customer_id,
                known_at=request.at,
            )
            customer = tax_customer(request.customer, certificates)
            return await aquote(self._tax, lines, customer, registrations, request.at)
        except ValueError as exc:  # tax input errors are ValueErrors: retrying cannot help
            raise _non_retryable(exc) from exc

    @activity.defn(name="billing.create_invoice")
    async def create_invoice(self, request: CreateInvoiceRequest) -> InvoiceSummary:
        """Draft and finalize in one transaction, idempotent by ``request.key``."""
        return _summary(await _in_thread(lambda: self._create_invoice(request)))

    def _create_invoice(self, request: CreateInvoiceRequest) -> InvoiceView:
        view = self._issue(request)
        if self._rate_changes is not None and any(
            line.kind == "subscription" for line in request.lines
        ):
            # A period's invoice: adjust the period that ends where this one starts. The
            # note's key names the earlier invoice and the change, so a retry finds it.
            carry_rate_changes(
                self._invoices,
                self._rate_changes,
                subscription_id=request.subscription_id,
                period_start=request.period_start,
                at=request.at,
            )
        return view

    def _issue(self, request: CreateInvoiceRequest) -> InvoiceView:
        address = request.customer.address
        return self._invoices.issue(
            key=request.key,
            customer_id=request.customer.customer_id,
            subscription_id=request.subscription_id,
            currency=request.currency,
            lines=[
                DraftLine(
                    line_id=line.line_id,
                    description=line.description,
                    amount=line.amount,
                    tax_behavior=_behavior(line),
                    kind=line.kind,
                    plan_id=line.plan_id,
                    period_start=line.period_start,
                    period_end=line.period_end,
                )
                for line in request.lines
            ],
            period_start=request.period_start,
            period_end=request.period_end,
            quote=request.quote,
            customer_tax=CustomerTaxDetails(
                country=address.country,
                region=address.state,
                vat_id=request.customer.tax_id,
                name=request.customer.name,
                address_text=", ".join(
                    part
                    for part in (
                        address.line1,
                        address.line2,
                        f"{address.postal_code} {address.city}",
                        address.state,
                        address.country,
                    )
                    if part
                ),
            ),
            at=request.at,
        )

    @activity.defn(name="billing.issue_invoice")
    async def issue_invoice(self, request: IssueInvoiceRequest) -> InvoiceSummary:
        """``quote_tax`` then ``create_invoice``: one step, so a renewal's invoice takes
        one local activity instead of two. A retry quotes again at the same ``at`` and
        finds the invoice already issued under ``request.key``."""
        quote = await self.quote_tax(request.tax_request())
        return await self.create_invoice(request.with_quote(quote))

    async def _paid_before(self, request: ChargeRequest) -> ChargeSucceeded | None:
        """A later attempt (a new idempotency key) first looks for a payment of the
        invoice the gateway already holds; the first attempt has nothing to find."""
        if request.attempt <= 1:
            return None
        found = await paid_before(
            self._gateway,
            customer_id=request.gateway_customer_id,
            invoice_id=request.invoice_id,
            amount=Money(request.amount, request.currency),
        )
        return (
            None
            if found is None
            else ChargeSucceeded(found.id, found.latest_charge_id, found.amount)
        )

    @activity.defn(name="billing.charge_invoice")
    async def charge_invoice(self, request: ChargeRequest) -> ChargeOutcome:
        outcome = await self._charge_off_session(request)
        await self._record(request, outcome, "off_session")
        return outcome

    async def _record(self, request: ChargeRequest, outcome: ChargeOutcome, path: str) -> None:
        await record_charge(
            self._cards,
            outcome,
            attempt_key=request.idempotency_key,
            customer_id=request.gateway_customer_id,
            payment_method_id=request.payment_method_id,
            invoice_id=request.invoice_id,
            subscription_id=request.subscription_id,
            path=path,
        )

    async def _charge_off_session(self, request: ChargeRequest) -> ChargeOutcome:
        try:
            paid = await self._paid_before(request)
            if paid is not None:
                return paid
            return await self._gateway.charge_off_session(
                customer_id=request.gateway_customer_id,
                payment_method_id=request.payment_method_id,
                amount=Money(request.amount, request.currency),
                idempotency_key=request.idempotency_key,
                metadata={
                    "dunwell_subscription_id": request.subscription_id,
                    "dunwell_invoice_id": request.invoice_id,
                    "dunwell_attempt": str(request.attempt),
                },
            )
        except GatewayError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name="billing.charge_and_record")
    async def charge_and_record(self, request: ChargeAndRecordRequest) -> ChargeOutcome:
        """``charge_invoice`` and, on success, the payment recorded as ``mark_invoice_paid``
        records it (without reading the invoice back) in one step: a renewal's payment
        takes one activity instead of two. A retry after a failed recording charges again
        under the same idempotency key, so the gateway answers with the first result, and
        records the payment once (keyed by invoice and PaymentIntent)."""
        outcome = await self.charge_invoice(request.charge)
        if isinstance(outcome, ChargeSucceeded):
            paid = outcome
            await _in_thread(
                lambda: self._invoices.record_payment(
                    request.charge.invoice_id,
                    payment_ref=paid.payment_intent_id,
                    amount=paid.amount.amount,
                    at=request.at,
                )
            )
        return outcome

    @activity.defn(name="billing.bill")
    async def bill(self, request: BillRequest) -> BillResult:
        """``issue_invoice`` then ``charge_and_record``: a renewal's whole billing step,
        so it takes one local activity. A definitive (non-retryable) charge error is
        the result, as a decline is; anything else that fails raises, and the workflow
        finishes the step with the separate activities, which find under their keys
        what this attempt did."""
        invoice = await self.issue_invoice(request.invoice)
        if request.charge is None or invoice.total <= 0:
            return BillResult(invoice)
        try:
            outcome = await self.charge_and_record(request.charge_request(invoice))
        except ApplicationError as exc:
            if not exc.non_retryable:
                raise
            return BillResult(invoice, charge_error=exc.type or "charge_error")
        return BillResult(invoice, outcome)

    @activity.defn(name="billing.charge_invoice_on_session")
    async def charge_invoice_on_session(self, request: ChargeRequest) -> ChargeOutcome:
        """A customer-initiated attempt while the customer is in the portal; 3-D Secure
        comes back as ``ChargeRequiresAction`` for the page to complete."""
        outcome = await self._charge_on_session(request)
        await self._record(request, outcome, "on_session")
        return outcome

    async def _charge_on_session(self, request: ChargeRequest) -> ChargeOutcome:
        try:
            paid = await self._paid_before(request)
            if paid is not None:
                return paid
            return await self._gateway.charge_on_session(
                customer_id=request.gateway_customer_id,
                payment_method_id=request.payment_method_id,
                amount=Money(request.amount, request.currency),
                idempotency_key=request.idempotency_key,
                metadata={
                    "dunwell_subscription_id": request.subscription_id,
                    "dunwell_invoice_id": request.invoice_id,
                    "dunwell_attempt": str(request.attempt),
                },
            )
        except GatewayError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name="billing.mark_invoice_paid")
    async def mark_invoice_paid(self, request: MarkPaidRequest) -> InvoiceSummary:
        view = await _in_thread(
            lambda: self._invoices.mark_paid(
                request.invoice_id,
                payment_ref=request.payment_ref,
                amount=request.amount,
                at=request.at,
            )
        )
        return _summary(view)

    @activity.defn(name="billing.void_invoice")
    async def void_invoice(self, request: VoidInvoiceRequest) -> CreditNoteSummary:
        note = await _in_thread(
            lambda: self._invoices.void(
                request.invoice_id, key=request.key, reason=request.reason, at=request.at
            )
        )
        return CreditNoteSummary(credit_note_id=str(note.id), number=note.number, amount=note.total)

    @activity.defn(name="billing.record_proration")
    async def record_proration(self, request: ProrationRecordRequest) -> None:
        """The audit (inputs and outputs of the arithmetic) with the lines as taxed on
        the finalized invoice, so the record shows the rates that were frozen."""

        def work() -> None:
            invoice = self._invoices.get(request.invoice_id)
            self._invoices.record_proration(
                request.audit,
                key=request.key,
                invoice_id=request.invoice_id,
                taxed_lines=list(invoice.lines),
                at=request.at,
            )

        await _in_thread(work)

    @activity.defn(name="billing.set_default_payment_method")
    async def set_default_payment_method(
        self, request: PaymentMethodRequest
    ) -> PaymentMethodDetails | None:
        """Attach the token to the gateway customer (a no-op if attached) and make it
        default; the card's non-sensitive details come back for the portal (None in
        histories recorded before the details were returned)."""
        try:
            details = await self._gateway.attach_payment_method(
                payment_method_id=request.payment_method_id,
                customer_id=request.gateway_customer_id,
                idempotency_key=f"{request.key}:attach",
            )
            await self._gateway.set_default_payment_method(
                customer_id=request.gateway_customer_id,
                payment_method_id=request.payment_method_id,
                idempotency_key=f"{request.key}:default",
            )
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        return details

    def all(self) -> list[Any]:
        return [
            self.load_catalog,
            self.quote_tax,
            self.create_invoice,
            self.issue_invoice,
            self.bill,
            self.charge_invoice,
            self.charge_and_record,
            self.charge_invoice_on_session,
            self.mark_invoice_paid,
            self.void_invoice,
            self.record_proration,
            self.set_default_payment_method,
            self.sync.resync,
            self.sync.describe_payment_method,
        ]
