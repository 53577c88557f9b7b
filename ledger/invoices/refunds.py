"""Refunds of a paid invoice: each one a credit note and a refund entry, once per
gateway refund.

``request_refund`` reserves an amount ops asked for (a ``requested`` row) before the
gateway is called, so refunds asked for at once can never together exceed what was
paid; ``record_refund`` books a refund the gateway made, whichever way it came (one
ops asked for, named by its reservation key, or one made in the Stripe dashboard), once
per gateway refund id; ``fail_refund`` frees a reservation the gateway refused.

What can be refunded: the invoice's payment (its latest gateway payment) less the
refunds recorded or reserved against it, and never more than remains creditable on the
invoice. Entries (positive = debit), in one transaction with the refund row:

- the credit note for the refunded amount, tax reversed at the invoice's frozen rates
  (``note_tax.refund_lines``): revenue +net, tax_payable(j) +tax(j), customer_credit
  -amount (a paid invoice owes nothing, so the whole note goes to the credit balance);
- the refund: customer_credit +amount, gateway_clearing -amount (key ``refund:<id>``),
  so the credit balance the note made is paid back at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from ledger import chart
from ledger.invoices.checks import aware, check_key, check_positive, check_text
from ledger.invoices.errors import (
    InvalidInvoiceInput,
    InvoiceError,
    InvoiceIdempotencyConflict,
    InvoiceNotFound,
    InvoiceStateError,
)
from ledger.invoices.note_tax import refund_lines
from ledger.invoices.notes import Notes, _NoteDraft
from ledger.invoices.reads import amounts, invoice_row, line_states
from ledger.invoices.refund_tables import invoice_refunds as _refunds
from ledger.invoices.tables import invoice_payments as _payments
from ledger.invoices.types import InvoiceStatus


class RefundReason(StrEnum):
    REQUESTED_BY_CUSTOMER = "requested_by_customer"
    DUPLICATE = "duplicate"
    FRAUDULENT = "fraudulent"
    SERVICE_ISSUE = "service_issue"
    GOODWILL = "goodwill"
    # A refund made at the gateway (the dashboard), mirrored: its reason is the gateway's.
    GATEWAY = "gateway"


# The reasons ops may give; ``gateway`` is kept for refunds Dunwell did not make.
OPS_REASONS = tuple(r.value for r in RefundReason if r is not RefundReason.GATEWAY)


class RefundExceedsRefundable(InvoiceError):
    """The refund is larger than what remains refundable on the invoice."""


class RefundNotFound(InvoiceError):
    """No refund with that key or id."""


@dataclass(frozen=True, slots=True)
class Refundable:
    invoice_id: str
    currency: str
    payment_ref: str | None
    paid: int  # by the payment a refund goes back to
    refunded: int  # recorded or reserved against it
    refundable: int


@dataclass(frozen=True, slots=True)
class RefundView:
    id: int
    key: str
    invoice_id: str
    refund_id: str | None
    payment_ref: str
    amount: int
    currency: str
    reason: str
    note: str | None
    source: str
    actor: str
    status: str
    failure: str | None
    credit_note_id: str | None
    ledger_entry_id: int | None
    requested_at: datetime
    recorded_at: datetime | None


def _view(row: Any) -> RefundView:
    return RefundView(
        id=int(row.id),
        key=row.key,
        invoice_id=row.invoice_id,
        refund_id=row.refund_id,
        payment_ref=row.payment_ref,
        amount=int(row.amount),
        currency=row.currency,
        reason=row.reason,
        note=row.note,
        source=row.source,
        actor=row.actor,
        status=row.status,
        failure=row.failure,
        credit_note_id=row.credit_note_id,
        ledger_entry_id=None if row.ledger_entry_id is None else int(row.ledger_entry_id),
        requested_at=row.requested_at,
        recorded_at=row.recorded_at,
    )


def _refundable(conn: Connection, row: Any, *, excluding: int | None = None) -> Refundable:
    """What remains refundable on the (locked) invoice ``row``."""
    payment = conn.execute(
        select(_payments.c.payment_ref, _payments.c.amount)
        .where(_payments.c.invoice_id == row.id)
        .order_by(_payments.c.id.desc())
        .limit(1)
    ).first()
    if payment is None:
        return Refundable(row.id, row.currency, None, 0, 0, 0)
    taken = select(func.coalesce(func.sum(_refunds.c.amount), 0)).where(
        _refunds.c.invoice_id == row.id,
        _refunds.c.payment_ref == payment.payment_ref,
        _refunds.c.status != "failed",
    )
    if excluding is not None:
        taken = taken.where(_refunds.c.id != excluding)
    refunded = int(conn.execute(taken).scalar_one())
    creditable = amounts(conn, row.id).creditable(int(row.total or 0))
    left = max(0, min(int(payment.amount) - refunded, creditable))
    return Refundable(
        row.id, row.currency, str(payment.payment_ref), int(payment.amount), refunded, left
    )


class Refunds(Notes):
    def invoice_paid_by(self, payment_ref: str) -> str | None:
        """The invoice a gateway payment paid, if the ledger recorded it."""

        def load(conn: Connection) -> str | None:
            found = conn.execute(
                select(_payments.c.invoice_id)
                .where(_payments.c.payment_ref == payment_ref)
                .order_by(_payments.c.id.desc())
                .limit(1)
            ).scalar_one_or_none()
            return None if found is None else str(found)

        return self._read(load)

    def refund_by_gateway_id(self, refund_id: str) -> RefundView | None:
        def load(conn: Connection) -> RefundView | None:
            row = conn.execute(select(_refunds).where(_refunds.c.refund_id == refund_id)).first()
            return None if row is None else _view(row)

        return self._read(load)

    def refundable(self, invoice_id: str) -> Refundable:
        return self._read(lambda conn: _refundable(conn, invoice_row(conn, invoice_id)))

    def request_refund(
        self,
        invoice_id: str,
        *,
        key: str,
        amount: int | None,
        reason: str,
        actor: str,
        at: datetime,
        note: str | None = None,
    ) -> RefundView:
        """Reserve a refund ops asked for (``amount`` None: everything refundable);
        idempotent by ``key``. Refused, writing nothing: an unknown invoice, one that is
        not paid, an amount above what remains refundable, an unknown reason."""
        check_key(key)
        at = aware(at, "at")
        if reason not in OPS_REASONS:
            raise InvalidInvoiceInput(f"reason must be one of {', '.join(OPS_REASONS)}")
        check_text(actor, "actor", 200)
        if note is not None:
            check_text(note, "note", 2000)
        if amount is not None:
            check_positive(amount, "amount")

        def work(conn: Connection) -> RefundView:
            row = invoice_row(conn, invoice_id, lock=True)
            seen = conn.execute(select(_refunds).where(_refunds.c.key == key)).first()
            if seen is not None:
                if seen.invoice_id != invoice_id or (
                    amount is not None and int(seen.amount) != amount
                ):
                    raise InvoiceIdempotencyConflict(f"refund key {key!r} was used differently")
                return _view(seen)
            if InvoiceStatus(row.status) is not InvoiceStatus.PAID:
                raise InvoiceStateError(
                    f"invoice {invoice_id} is {row.status}; only a paid invoice is refunded"
                )
            room = _refundable(conn, row)
            wanted = room.refundable if amount is None else amount
            if room.payment_ref is None or wanted <= 0:
                raise RefundExceedsRefundable(f"nothing remains refundable on {row.number}")
            if wanted > room.refundable:
                raise RefundExceedsRefundable(
                    f"refund of {wanted} exceeds the {room.refundable} refundable on {row.number}"
                )
            new_id = conn.execute(
                insert(_refunds)
                .values(
                    key=key,
                    invoice_id=invoice_id,
                    payment_ref=room.payment_ref,
                    amount=wanted,
                    currency=row.currency,
                    reason=reason,
                    note=note,
                    source="ops",
                    actor=actor,
                    status="requested",
                    requested_at=at,
                )
                .returning(_refunds.c.id)
            ).scalar_one()
            return self._refund(conn, id_=int(new_id))

        return self._transact(work)

    def record_refund(
        self,
        *,
        refund_id: str,
        invoice_id: str,
        amount: int,
        currency: str,
        payment_ref: str,
        at: datetime,
        key: str | None = None,
        reason: str = RefundReason.GATEWAY,
        actor: str = "gateway",
    ) -> RefundView:
        """Book a refund the gateway made, once per ``refund_id``: the reservation
        ``key`` names (ops) or a new row (made at the gateway). The caller has read the
        refund back from the gateway; this checks it against the invoice."""
        check_text(refund_id, "refund_id", 255)
        check_positive(amount, "amount")
        at = aware(at, "at")

        def work(conn: Connection) -> RefundView:
            row = invoice_row(conn, invoice_id, lock=True)
            done = conn.execute(select(_refunds).where(_refunds.c.refund_id == refund_id)).first()
            if done is not None:
                return _view(done)
            reserved = None
            if key is not None:
                reserved = conn.execute(select(_refunds).where(_refunds.c.key == key)).first()
                if reserved is None or reserved.invoice_id != invoice_id:
                    raise RefundNotFound(f"no refund reserved under {key!r} for {invoice_id}")
            if currency != row.currency:
                raise InvalidInvoiceInput(
                    f"refund {refund_id} is in {currency}; invoice {row.number} in {row.currency}"
                )
            room = _refundable(conn, row, excluding=None if reserved is None else reserved.id)
            if room.payment_ref != payment_ref:
                raise InvalidInvoiceInput(
                    f"refund {refund_id} returns {payment_ref}, not the invoice's payment"
                )
            if amount > room.refundable:
                raise RefundExceedsRefundable(
                    f"refund {refund_id} of {amount} exceeds the {room.refundable} refundable"
                )
            states = list(line_states(conn, invoice_id).values())
            draft = _NoteDraft("credit", "adjustment", refund_lines(states, amount))
            note = self._write_note(
                conn, row, f"refund:{refund_id}", f"refund {refund_id}", at, draft
            )
            entry_id = self._post(
                conn,
                key=f"refund:{refund_id}",
                at=at,
                description=f"refund {refund_id} of invoice {row.number}",
                currency=row.currency,
                moves=[
                    (chart.customer_credit(row.customer_id, row.currency), amount),
                    (chart.gateway_clearing(row.currency), -amount),
                ],
                metadata={"invoice_id": invoice_id, "refund_id": refund_id, "note_id": note.id},
            )
            recorded = {
                "refund_id": refund_id,
                "amount": amount,
                "status": "recorded",
                "credit_note_id": note.id,
                "ledger_entry_id": entry_id,
                "recorded_at": at,
            }
            if reserved is not None:
                conn.execute(update(_refunds).where(_refunds.c.id == reserved.id).values(recorded))
                return self._refund(conn, id_=int(reserved.id))
            new_id = conn.execute(
                insert(_refunds)
                .values(
                    key=f"gateway:{refund_id}",
                    invoice_id=invoice_id,
                    payment_ref=payment_ref,
                    currency=currency,
                    reason=reason,
                    source="gateway",
                    actor=actor,
                    requested_at=at,
                    **recorded,
                )
                .returning(_refunds.c.id)
            ).scalar_one()
            return self._refund(conn, id_=int(new_id))

        return self._transact(work)

    def fail_refund(self, key: str, *, failure: str, at: datetime) -> RefundView:
        """The gateway refused the refund reserved under ``key``: its amount is free again."""
        check_text(failure, "failure", 2000)

        def work(conn: Connection) -> RefundView:
            row = conn.execute(select(_refunds).where(_refunds.c.key == key)).first()
            if row is None:
                raise RefundNotFound(f"no refund reserved under {key!r}")
            if row.status == "requested":
                conn.execute(
                    update(_refunds)
                    .where(_refunds.c.id == row.id)
                    .values(status="failed", failure=failure, recorded_at=aware(at, "at"))
                )
            return self._refund(conn, id_=int(row.id))

        return self._transact(work)

    def get_refund(self, key: str) -> RefundView:
        def load(conn: Connection) -> RefundView:
            row = conn.execute(select(_refunds).where(_refunds.c.key == key)).first()
            if row is None:
                raise RefundNotFound(f"no refund {key!r}")
            return _view(row)

        return self._read(load)

    def list_refunds(
        self, *, invoice_id: str | None = None, after_id: int = 0, limit: int = 100
    ) -> list[RefundView]:
        def load(conn: Connection) -> list[RefundView]:
            query = select(_refunds).where(_refunds.c.id > after_id)
            if invoice_id is not None:
                query = query.where(_refunds.c.invoice_id == invoice_id)
            rows = conn.execute(query.order_by(_refunds.c.id).limit(limit))
            return [_view(r) for r in rows]

        return self._read(load)

    @staticmethod
    def _refund(conn: Connection, *, id_: int) -> RefundView:
        row = conn.execute(select(_refunds).where(_refunds.c.id == id_)).first()
        if row is None:  # pragma: no cover - read in the transaction that wrote it
            raise InvoiceNotFound(f"refund row {id_} vanished")
        return _view(row)
