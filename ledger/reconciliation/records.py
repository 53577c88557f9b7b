"""The ledger's records of gateway money, by the gateway id they cite.

Payments are the invoice payments (``payment_ref`` is the gateway's payment intent id);
refunds are the recorded invoice refunds (by the gateway's refund id); disputes are the
dispute movements, by their balance transaction id (with the dispute's own amount and
currency, which a dispute transaction's source carries). ``unsettled_payments`` are
those no reconciled payout has settled yet, for the sweep to age.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, exists, select

from billing.reconciliation.model import LedgerKind, LedgerRecord
from ledger.disputes.store import movement_records
from ledger.invoices.refund_tables import invoice_refunds as _ref
from ledger.invoices.tables import invoice_payments as _pay
from ledger.invoices.tables import invoices as _inv
from ledger.reconciliation.tables import settlement_lines as _lines

_CHUNK = 5000


_BY_REF_PG = (
    "SELECT p.payment_ref, p.amount, i.currency, p.ledger_entry_id, p.paid_at"
    " FROM invoice_payments p JOIN invoices i ON i.id = p.invoice_id"
    " WHERE p.payment_ref = ANY(%(refs)s) ORDER BY p.id"
)


_REFUNDS_PG = (
    "SELECT refund_id, amount, currency, ledger_entry_id, recorded_at FROM invoice_refunds"
    " WHERE refund_id = ANY(%(refs)s) AND status = 'recorded' ORDER BY id"
)


def ledger_records(conn: Connection, refs: Iterable[str]) -> dict[str, list[LedgerRecord]]:
    wanted = sorted(set(refs))
    found: dict[str, list[LedgerRecord]] = defaultdict(list)
    _refunds(conn, [r for r in wanted if r.startswith("re_")], found)
    for ref, amount, currency, entry_id, at in movement_records(
        conn, [r for r in wanted if r.startswith("txn_")]
    ):
        found[ref].append(LedgerRecord(LedgerKind.DISPUTE, ref, amount, currency, entry_id, at))
    if conn.dialect.name == "postgresql":  # one array parameter, not N bound values
        for ref, amount, currency, entry_id, paid_at in conn.exec_driver_sql(
            _BY_REF_PG, {"refs": wanted}
        ):
            found[str(ref)].append(
                LedgerRecord(
                    LedgerKind.PAYMENT,
                    str(ref),
                    int(amount),
                    str(currency),
                    int(entry_id or 0),
                    paid_at,
                )
            )
        return dict(found)
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        stmt = (
            select(
                _pay.c.payment_ref,
                _pay.c.amount,
                _inv.c.currency,
                _pay.c.ledger_entry_id,
                _pay.c.paid_at,
            )
            .join(_inv, _inv.c.id == _pay.c.invoice_id)
            .where(_pay.c.payment_ref.in_(chunk))
            .order_by(_pay.c.id)
        )
        for ref, amount, currency, entry_id, paid_at in conn.execute(stmt):
            found[str(ref)].append(
                LedgerRecord(
                    LedgerKind.PAYMENT,
                    str(ref),
                    int(amount),
                    str(currency),
                    int(entry_id or 0),
                    paid_at,
                )
            )
    return dict(found)


def _refunds(conn: Connection, refs: list[str], found: dict[str, list[LedgerRecord]]) -> None:
    if not refs:
        return
    if conn.dialect.name == "postgresql":
        rows = list(conn.exec_driver_sql(_REFUNDS_PG, {"refs": refs}))
    else:
        rows = []
        for start in range(0, len(refs), _CHUNK):
            rows.extend(
                conn.execute(
                    select(
                        _ref.c.refund_id,
                        _ref.c.amount,
                        _ref.c.currency,
                        _ref.c.ledger_entry_id,
                        _ref.c.recorded_at,
                    )
                    .where(_ref.c.refund_id.in_(refs[start : start + _CHUNK]))
                    .where(_ref.c.status == "recorded")
                    .order_by(_ref.c.id)
                )
            )
    for ref, amount, currency, entry_id, at in rows:
        found[str(ref)].append(
            LedgerRecord(
                LedgerKind.REFUND, str(ref), int(amount), str(currency), int(entry_id or 0), at
            )
        )


def unsettled_payments(
    conn: Connection, start: datetime, end: datetime, *, limit: int
) -> list[LedgerRecord]:
    """Payments recorded in ``[start, end)`` that no reconciled payout has settled."""
    settled = exists(select(_lines.c.txn_id).where(_lines.c.ledger_ref == _pay.c.payment_ref))
    stmt = (
        select(_pay.c.payment_ref, _pay.c.amount, _inv.c.currency, _pay.c.ledger_entry_id,
               _pay.c.paid_at)
        .join(_inv, _inv.c.id == _pay.c.invoice_id)
        .where(_pay.c.paid_at >= start, _pay.c.paid_at < end, ~settled)
        .order_by(_pay.c.id)
        .limit(limit)
    )  # fmt: skip
    return [
        LedgerRecord(
            LedgerKind.PAYMENT, str(ref), int(amount), str(currency), int(entry_id or 0), paid_at
        )
        for ref, amount, currency, entry_id, paid_at in conn.execute(stmt)
    ]
