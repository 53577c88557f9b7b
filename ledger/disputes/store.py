"""``DisputeStore``: each dispute's row and the money it moved, booked once.

Entries (positive = debit), one per dispute balance transaction, key
``dispute:<balance transaction id>``, in the settlement currency:

- funds withdrawn (amount -A, fee F): chargebacks +A, gateway_fees +F,
  gateway_clearing -(A + F);
- funds reinstated (amount +A, fee -F when the gateway returns it): chargebacks -A,
  gateway_fees -F, gateway_clearing +(A + F).

So ``chargebacks`` holds what disputes took and did not give back, and clearing moves
by exactly what the gateway's balance moved (the transaction's net). Reconciliation
matches these transactions to the movements and posts nothing more for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from billing.disputes import DisputeSnapshot, DisputeTxn
from ledger import chart
from ledger.accounts import get_or_create_accounts
from ledger.disputes.tables import dispute_movements as _moves
from ledger.disputes.tables import disputes as _disputes
from ledger.entries import EntryRequest, PostingRequest
from ledger.journal import post_entries
from ledger.unit_of_work import read, transact


@dataclass(frozen=True, slots=True)
class DisputeView:
    dispute_id: str
    charge_id: str
    payment_ref: str
    invoice_id: str
    subscription_id: str | None
    customer_id: str
    amount: int
    currency: str
    reason: str
    status: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    withdrawn: int  # funds withdrawn, net of those reinstated (settlement currency)
    fees: int


@dataclass(frozen=True, slots=True)
class Recorded:
    dispute: DisputeView
    posted: int  # movements booked by this call
    against_subscription: int  # disputes of its subscription that count against it


def entry_key(txn_id: str) -> str:
    return f"dispute:{txn_id}"


def _entry(dispute: DisputeSnapshot, txn: DisputeTxn) -> EntryRequest:
    c = txn.currency
    moves = [
        (chart.chargebacks(c), -txn.amount),
        (chart.gateway_fees(c), txn.fee),
        (chart.gateway_clearing(c), txn.net),
    ]
    return EntryRequest(
        idempotency_key=entry_key(txn.id),
        effective_at=txn.created,
        description=f"dispute {dispute.id}: funds {txn.kind}",
        postings=tuple(PostingRequest(spec.code, value, c) for spec, value in moves if value),
        metadata={
            "dispute_id": dispute.id,
            "balance_transaction": txn.id,
            "charge": dispute.charge_id,
        },
    )


class DisputeStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        dispute: DisputeSnapshot,
        *,
        invoice_id: str,
        subscription_id: str | None,
        customer_id: str,
        payment_ref: str,
        at: datetime,
    ) -> Recorded:
        """The dispute's state as the gateway holds it, and each of its balance
        transactions not booked yet; idempotent."""

        def work(conn: Connection) -> Recorded:
            row = conn.execute(
                select(_disputes).where(_disputes.c.dispute_id == dispute.id).with_for_update()
            ).first()
            closed_at = at if dispute.closed else None
            if row is None:
                conn.execute(
                    insert(_disputes).values(
                        dispute_id=dispute.id,
                        charge_id=dispute.charge_id,
                        payment_ref=payment_ref,
                        invoice_id=invoice_id,
                        subscription_id=subscription_id,
                        customer_id=customer_id,
                        amount=dispute.amount,
                        currency=dispute.currency,
                        reason=dispute.reason,
                        status=dispute.status,
                        opened_at=dispute.created,
                        updated_at=at,
                        closed_at=closed_at,
                    )
                )
            elif row.status != dispute.status:
                conn.execute(
                    update(_disputes)
                    .where(_disputes.c.dispute_id == dispute.id)
                    .values(
                        status=dispute.status,
                        updated_at=at,
                        closed_at=row.closed_at or closed_at,
                    )
                )
            posted = self._post_new(conn, dispute, at)
            view = _load(conn, dispute.id)
            return Recorded(view, posted, _against(conn, subscription_id))

        return transact(self._engine, work)

    @staticmethod
    def _post_new(conn: Connection, dispute: DisputeSnapshot, at: datetime) -> int:
        txns = dispute.balance_transactions
        if not txns:
            return 0
        done = set(
            conn.execute(
                select(_moves.c.txn_id).where(_moves.c.txn_id.in_([t.id for t in txns]))
            ).scalars()
        )
        new = [t for t in txns if t.id not in done]
        if not new:
            return 0
        currencies = {t.currency for t in new}
        get_or_create_accounts(
            conn,
            [
                spec
                for c in sorted(currencies)
                for spec in (chart.chargebacks(c), chart.gateway_fees(c), chart.gateway_clearing(c))
            ],
        )
        posted = post_entries(conn, [_entry(dispute, t) for t in new])
        conn.execute(
            insert(_moves),
            [
                {
                    "txn_id": t.id,
                    "dispute_id": dispute.id,
                    "kind": t.kind,
                    "amount": t.amount,
                    "fee": t.fee,
                    "currency": t.currency,
                    "ledger_entry_id": entry.id,
                    "recorded_at": at,
                }
                for t, entry in zip(new, posted, strict=True)
            ],
        )
        return len(new)

    def get(self, dispute_id: str) -> DisputeView | None:
        def load(conn: Connection) -> DisputeView | None:
            exists = conn.execute(
                select(_disputes.c.dispute_id).where(_disputes.c.dispute_id == dispute_id)
            ).first()
            return None if exists is None else _load(conn, dispute_id)

        return read(self._engine, load)

    def list(
        self, *, status: str | None = None, open_only: bool = False, limit: int = 100
    ) -> list[DisputeView]:
        def load(conn: Connection) -> list[DisputeView]:
            query = select(_disputes.c.dispute_id)
            if status is not None:
                query = query.where(_disputes.c.status == status)
            if open_only:
                query = query.where(_disputes.c.closed_at.is_(None))
            ids = conn.execute(
                query.order_by(_disputes.c.opened_at, _disputes.c.dispute_id).limit(limit)
            ).scalars()
            return [_load(conn, i) for i in list(ids)]

        return read(self._engine, load)


def _against(conn: Connection, subscription_id: str | None) -> int:
    if subscription_id is None:
        return 0
    return int(
        conn.execute(
            select(func.count())
            .select_from(_disputes)
            .where(
                _disputes.c.subscription_id == subscription_id,
                _disputes.c.status.not_in(("won", "warning_closed")),
            )
        ).scalar_one()
    )


def _load(conn: Connection, dispute_id: str) -> DisputeView:
    row: Any = conn.execute(select(_disputes).where(_disputes.c.dispute_id == dispute_id)).one()
    withdrawn, fees = conn.execute(
        select(
            func.coalesce(func.sum(_moves.c.amount), 0), func.coalesce(func.sum(_moves.c.fee), 0)
        ).where(_moves.c.dispute_id == dispute_id)
    ).one()
    return DisputeView(
        dispute_id=row.dispute_id,
        charge_id=row.charge_id,
        payment_ref=row.payment_ref,
        invoice_id=row.invoice_id,
        subscription_id=row.subscription_id,
        customer_id=row.customer_id,
        amount=int(row.amount),
        currency=row.currency,
        reason=row.reason,
        status=row.status,
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        withdrawn=-int(withdrawn),
        fees=int(fees),
    )


def movement_records(
    conn: Connection, refs: Sequence[str]
) -> list[tuple[str, int, str, int, datetime]]:
    """(balance transaction id, dispute amount, dispute currency, entry id, recorded at) of
    the dispute movements among ``refs``: what reconciliation matches them with."""
    if not refs:
        return []
    rows = conn.execute(
        select(
            _moves.c.txn_id,
            _disputes.c.amount,
            _disputes.c.currency,
            _moves.c.ledger_entry_id,
            _moves.c.recorded_at,
        )
        .join(_disputes, _disputes.c.dispute_id == _moves.c.dispute_id)
        .where(_moves.c.txn_id.in_(list(refs)))
    )
    return [(str(a), int(b), str(c), int(d), e) for a, b, c, d, e in rows]
