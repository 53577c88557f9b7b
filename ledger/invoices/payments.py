"""Payments and collection of a finalized invoice: payments, write-off, recovery.

Partial payments are allowed; the invoice is paid when nothing remains. Entries
(positive = debit):

- payment: gateway_clearing +amount, receivable -amount (``bad_debt`` -amount when the
  invoice was written off: a recovery);
- uncollectible: bad_debt +remaining, receivable -remaining.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select

from ledger import chart
from ledger.accounts import AccountSpec
from ledger.invoices.base import StoreBase
from ledger.invoices.checks import aware, check_key, check_positive, check_text
from ledger.invoices.errors import (
    InvoiceIdempotencyConflict,
    InvoiceStateError,
    PaymentExceedsRemaining,
)
from ledger.invoices.reads import amounts, invoice_row, load_invoice, payable_row
from ledger.invoices.tables import (
    invoice_payments as _payments,
)
from ledger.invoices.tables import (
    invoice_writeoffs as _writeoffs,
)
from ledger.invoices.types import InvoiceStatus, InvoiceView
from ledger.models import AccountType


def bad_debt(currency: str) -> AccountSpec:
    """Receivables written off as uncollectible (expense); recoveries credit it."""
    return AccountSpec(f"bad_debt:{currency}", AccountType.EXPENSE, currency)


# Statements every renewal's payment runs, built once (see reads.py).
_PAYMENT_BY_KEY = select(_payments).where(_payments.c.idempotency_key == bindparam("key"))
_INSERT_PAYMENT = insert(_payments)


class Payments(StoreBase):
    def mark_paid(
        self,
        invoice_id: str,
        *,
        payment_ref: str,
        amount: int,
        at: datetime,
        idempotency_key: str | None = None,
    ) -> InvoiceView:
        """Record a payment (partial payments allowed); the invoice is paid when nothing
        remains. Idempotent by ``idempotency_key`` (default: invoice id + payment_ref)."""
        record = self._payment_recorder(invoice_id, payment_ref, amount, at, idempotency_key)

        def work(conn: Connection) -> InvoiceView:
            record(conn)
            return load_invoice(conn, invoice_id)

        return self._transact(work)

    def record_payment(
        self,
        invoice_id: str,
        *,
        payment_ref: str,
        amount: int,
        at: datetime,
        idempotency_key: str | None = None,
    ) -> None:
        """``mark_paid`` for a caller that needs no view of the invoice afterwards (a
        renewal's charge): the same checks and writes, without reading the invoice back."""
        self._transact(self._payment_recorder(invoice_id, payment_ref, amount, at, idempotency_key))

    def _payment_recorder(
        self,
        invoice_id: str,
        payment_ref: str,
        amount: int,
        at: datetime,
        idempotency_key: str | None,
    ) -> Callable[[Connection], None]:
        check_text(payment_ref, "payment_ref", 200)
        check_positive(amount, "amount")
        at = aware(at, "at")
        key = idempotency_key or f"payment:{invoice_id}:{payment_ref}"
        check_key(key)

        def record(conn: Connection) -> None:
            row = payable_row(conn, invoice_id)
            seen = conn.execute(_PAYMENT_BY_KEY, {"key": key}).first()
            if seen is not None:
                if (seen.invoice_id, int(seen.amount), seen.payment_ref) != (
                    invoice_id,
                    amount,
                    payment_ref,
                ):
                    raise InvoiceIdempotencyConflict(f"payment key {key!r} was used differently")
                return
            status = InvoiceStatus(row.status)
            if status not in (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE, InvoiceStatus.PAID):
                raise InvoiceStateError(f"invoice {invoice_id} is {status}; it cannot be paid")
            remaining = amounts(conn, invoice_id).remaining(int(row.total))
            if amount > remaining:
                raise PaymentExceedsRemaining(
                    f"payment of {amount} exceeds the {remaining} remaining on {row.number}"
                )
            recovery = status is InvoiceStatus.UNCOLLECTIBLE
            credited = (
                bad_debt(row.currency)
                if recovery
                else chart.accounts_receivable(row.customer_id, row.currency)
            )
            entry_id = self._post(
                conn,
                key=f"invoice:{invoice_id}:{key}",
                at=at,
                description=f"payment {payment_ref} of invoice {row.number}",
                currency=row.currency,
                moves=[(chart.gateway_clearing(row.currency), amount), (credited, -amount)],
                metadata={"invoice_id": invoice_id, "payment_ref": payment_ref},
            )
            conn.execute(
                _INSERT_PAYMENT,
                {
                    "invoice_id": invoice_id,
                    "idempotency_key": key,
                    "payment_ref": payment_ref,
                    "amount": amount,
                    "paid_at": at,
                    "recovery": recovery,
                    "ledger_entry_id": entry_id,
                },
            )
            if amount == remaining and status is not InvoiceStatus.PAID:
                self._set_status(conn, invoice_id, InvoiceStatus.PAID, at)
                paid = {
                    "id": invoice_id,
                    "number": row.number,
                    "subscription_id": row.subscription_id,
                    "customer_id": row.customer_id,
                    "currency": row.currency,
                    "total": int(row.total),
                    "status": InvoiceStatus.PAID.value,
                    "payment_ref": payment_ref,
                }
                self._emit(conn, "invoice.paid", f"invoice.paid:{invoice_id}", row, at, paid)

        return record

    def mark_uncollectible(self, invoice_id: str, *, at: datetime) -> InvoiceView:
        """Write the amount remaining off to ``bad_debt``; idempotent."""
        at = aware(at, "at")

        def work(conn: Connection) -> InvoiceView:
            row = invoice_row(conn, invoice_id, lock=True)
            if row.status == InvoiceStatus.UNCOLLECTIBLE:
                return load_invoice(conn, invoice_id)
            if row.status != InvoiceStatus.OPEN:
                raise InvoiceStateError(f"invoice {invoice_id} is {row.status}, not open")
            remaining = amounts(conn, invoice_id).remaining(int(row.total))
            entry_id = self._post(
                conn,
                key=f"invoice:{invoice_id}:written_off",
                at=at,
                description=f"invoice {row.number} written off as uncollectible",
                currency=row.currency,
                moves=[
                    (bad_debt(row.currency), remaining),
                    (chart.accounts_receivable(row.customer_id, row.currency), -remaining),
                ],
                metadata={"invoice_id": invoice_id},
            )
            conn.execute(
                insert(_writeoffs).values(
                    invoice_id=invoice_id,
                    amount=remaining,
                    written_off_at=at,
                    ledger_entry_id=entry_id,
                )
            )
            self._set_status(conn, invoice_id, InvoiceStatus.UNCOLLECTIBLE, at)
            return load_invoice(conn, invoice_id)

        return self._transact(work)
