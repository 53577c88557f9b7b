"""Settlement lines and payout runs: what a reconciliation run read and concluded.

A payout's balance transactions are stored once per transaction id with the matcher's
verdict (a rerun updates the verdict); the payout's run row holds its gateway state, the
run's state and, once finished, its report: gross, fees, refunds, disputes, net, how
many lines matched and the exceptions per class.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, case, func, select

from billing.reconciliation.matcher import LineResult, PayoutTotals
from billing.reconciliation.model import Payout, TxnKind
from ledger.db import insert_or_ignore
from ledger.reconciliation.tables import reconciliation_exceptions as _x
from ledger.reconciliation.tables import reconciliation_runs as _runs
from ledger.reconciliation.tables import settlement_lines as _lines

_SOURCED = (TxnKind.PAYMENT.value, TxnKind.REFUND.value, TxnKind.DISPUTE.value)
_CHUNK = 5000


def start_run(conn: Connection, payout: Payout, *, at: datetime) -> None:
    """Create or refresh the payout's run row, marked running."""
    values = {
        "payout_id": payout.id,
        "currency": payout.currency,
        "amount": payout.amount,
        "payout_status": payout.status,
        "arrival_date": payout.arrival_date,
        "status": "running",
        "started_at": at,
    }
    stmt = insert_or_ignore(conn, _runs).values(values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["payout_id"],
            set_={k: stmt.excluded[k] for k in values if k != "payout_id"},
        )
    )


def run_row(conn: Connection, payout_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(_runs).where(_runs.c.payout_id == payout_id)).mappings().first()
    return None if row is None else dict(row)


def list_runs(conn: Connection, *, limit: int = 50) -> list[dict[str, Any]]:
    stmt = select(_runs).order_by(_runs.c.arrival_date.desc(), _runs.c.payout_id).limit(limit)
    return [dict(row) for row in conn.execute(stmt).mappings()]


def runs_arriving(conn: Connection, start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    stmt = select(_runs).where(_runs.c.arrival_date >= start, _runs.c.arrival_date < end)
    return {row["payout_id"]: dict(row) for row in conn.execute(stmt).mappings()}


_SETTLED_PG = (
    "SELECT ledger_ref, txn_id FROM settlement_lines"
    " WHERE ledger_ref = ANY(%(refs)s) AND kind = ANY(%(kinds)s)"
)


def settled_elsewhere(
    conn: Connection, refs: Iterable[str], txn_ids: Iterable[str]
) -> dict[str, str]:
    """For each ref, another sourced balance transaction already stored for it."""
    wanted, own = sorted(set(refs)), set(txn_ids)
    found: dict[str, str] = {}
    if conn.dialect.name == "postgresql":  # one array parameter, not N bound values
        rows = conn.exec_driver_sql(_SETTLED_PG, {"refs": wanted, "kinds": list(_SOURCED)})
        for ref, txn_id in rows:
            if txn_id not in own:
                found.setdefault(str(ref), str(txn_id))
        return found
    for start in range(0, len(wanted), _CHUNK):
        stmt = select(_lines.c.ledger_ref, _lines.c.txn_id).where(
            _lines.c.ledger_ref.in_(wanted[start : start + _CHUNK]), _lines.c.kind.in_(_SOURCED)
        )
        for ref, txn_id in conn.execute(stmt):
            if txn_id not in own:
                found.setdefault(str(ref), str(txn_id))
    return found


_STORE_LINES_PG = """
INSERT INTO settlement_lines (txn_id, payout_id, kind, type, reporting_category, amount, fee,
    net, currency, source, ledger_ref, source_amount, source_currency, created, available_on,
    matched, classes, recorded_at)
SELECT u.*, %(at)s FROM unnest(%(txn_id)s::text[], %(payout_id)s::text[], %(kind)s::text[],
    %(type)s::text[], %(reporting_category)s::text[], %(amount)s::bigint[], %(fee)s::bigint[],
    %(net)s::bigint[], %(currency)s::text[], %(source)s::text[], %(ledger_ref)s::text[],
    %(source_amount)s::bigint[], %(source_currency)s::text[], %(created)s::timestamptz[],
    %(available_on)s::timestamptz[], %(matched)s::boolean[], %(classes)s::text[]) AS u
ON CONFLICT (txn_id) DO UPDATE SET matched = EXCLUDED.matched, classes = EXCLUDED.classes,
    payout_id = EXCLUDED.payout_id
"""


def store_lines(conn: Connection, lines: Sequence[LineResult], *, at: datetime) -> None:
    if not lines:
        return
    # One row per transaction id: a statement may not update one row twice.
    lines = list({line.txn.id: line for line in lines}.values())
    if conn.dialect.name == "postgresql":  # one statement of arrays, not N rows
        columns: dict[str, list[Any]] = {name: [] for name in _LINE_COLUMNS}
        for line in lines:
            for name, value in zip(_LINE_COLUMNS, _line_values(line), strict=True):
                columns[name].append(value)
        conn.exec_driver_sql(_STORE_LINES_PG, {**columns, "at": at})
        return
    rows = [
        {
            "txn_id": line.txn.id,
            "payout_id": line.txn.payout_id,
            "kind": line.txn.kind.value,
            "type": line.txn.type[:64],
            "reporting_category": line.txn.reporting_category[:64],
            "amount": line.txn.amount,
            "fee": line.txn.fee,
            "net": line.txn.net,
            "currency": line.txn.currency,
            "source": line.txn.source,
            "ledger_ref": line.txn.ledger_ref,
            "source_amount": line.txn.source_amount,
            "source_currency": line.txn.source_currency,
            "created": line.txn.created,
            "available_on": line.txn.available_on,
            "matched": line.matched,
            "classes": ",".join(c.value for c in line.classes),
            "recorded_at": at,
        }
        for line in lines
    ]
    stmt = insert_or_ignore(conn, _lines)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["txn_id"],
            set_={
                "matched": stmt.excluded.matched,
                "classes": stmt.excluded.classes,
                "payout_id": stmt.excluded.payout_id,
            },
        ),
        rows,
    )


def payout_totals(conn: Connection, payout: Payout) -> PayoutTotals:
    """The lines of the payout other than its own transaction."""
    own = payout.balance_transaction or ""
    row = conn.execute(
        select(
            func.coalesce(func.sum(_lines.c.net), 0),
            func.count(),
            func.coalesce(func.sum(case((_lines.c.kind == TxnKind.UNKNOWN.value, 1), else_=0)), 0),
        ).where(_lines.c.payout_id == payout.id, _lines.c.txn_id != own)
    ).one()
    return PayoutTotals(net=int(row[0]), lines=int(row[1]), unknown=int(row[2]))


def report(conn: Connection, payout: Payout) -> dict[str, Any]:
    """The payout's report, from its stored lines and exceptions."""
    own = payout.balance_transaction or ""
    k = _lines.c.kind

    def total(column: Any, kind: TxnKind) -> Any:
        return func.coalesce(func.sum(case((k == kind.value, column), else_=0)), 0)

    row = conn.execute(
        select(
            total(_lines.c.amount, TxnKind.PAYMENT),
            func.coalesce(func.sum(_lines.c.fee), 0),
            total(_lines.c.net, TxnKind.FEE),
            total(_lines.c.amount, TxnKind.REFUND),
            total(_lines.c.amount, TxnKind.DISPUTE),
            func.coalesce(func.sum(_lines.c.net), 0),
            func.coalesce(func.sum(case((_lines.c.matched, 1), else_=0)), 0),
            func.count(),
        ).where(_lines.c.payout_id == payout.id, _lines.c.txn_id != own)
    ).one()
    gross, fees, fee_lines, refunds, disputes, net, matched, lines = (int(v) for v in row)
    by_class = {
        str(cls): int(n)
        for cls, n in conn.execute(
            select(_x.c["class"], func.count())
            .where(_x.c.payout_id == payout.id)
            .group_by(_x.c["class"])
            .order_by(_x.c["class"])
        )
    }
    return {
        "payout_id": payout.id,
        "currency": payout.currency,
        "payout_amount": payout.amount,
        "payout_status": payout.status,
        "arrival_date": payout.arrival_date.isoformat(),
        "gross": gross,
        "fees": fees - fee_lines,
        "refunds": refunds,
        "disputes": disputes,
        "net": net,
        "lines": lines,
        "matched": matched,
        "exceptions": sum(by_class.values()),
        "exceptions_by_class": by_class,
    }


@dataclass(frozen=True, slots=True)
class Finished:
    status: str
    report: dict[str, Any]


def finish_run(conn: Connection, payout: Payout, *, at: datetime, waiting: bool) -> Finished:
    body = report(conn, payout)
    status = "waiting" if waiting else ("exceptions" if body["exceptions"] else "reconciled")
    conn.execute(
        _runs.update()
        .where(_runs.c.payout_id == payout.id)
        .values(
            status=status,
            report=body,
            payout_status=payout.status,
            amount=payout.amount,
            completed_at=at,
        )
    )
    return Finished(status, body)


_LINE_COLUMNS = (
    "txn_id", "payout_id", "kind", "type", "reporting_category", "amount", "fee", "net",
    "currency", "source", "ledger_ref", "source_amount", "source_currency", "created",
    "available_on", "matched", "classes",
)  # fmt: skip


def _line_values(line: LineResult) -> tuple[Any, ...]:
    t = line.txn
    return (
        t.id, t.payout_id, t.kind.value, t.type[:64], t.reporting_category[:64], t.amount,
        t.fee, t.net, t.currency, t.source, t.ledger_ref, t.source_amount, t.source_currency,
        t.created, t.available_on, line.matched, ",".join(c.value for c in line.classes),
    )  # fmt: skip


REPORT_CSV_FIELDS = (
    "payout_id",
    "currency",
    "payout_amount",
    "payout_status",
    "arrival_date",
    "gross",
    "fees",
    "refunds",
    "disputes",
    "net",
    "lines",
    "matched",
    "exceptions",
)
