"""Where the seller stands against each economic-nexus threshold, and the alerts.

The running totals come from the compliance ledger's line records: sales are the net
amounts of the documents taxed in the jurisdiction (invoices and debit notes add,
credit notes subtract; one record per line, its first component) in the threshold's
currency, by tax point within the measurement window; transactions are the invoices.
Lines are recorded whether or not the seller collects there (``not_collecting``), so
the totals cover exactly the places where nobody collects yet. Each window's totals
are one grouped query.

``raise_alerts`` records an alert at 80 % and at 100 % of a threshold in a
jurisdiction where no registration is in force on the day; the table's unique key
(jurisdiction, level, threshold) makes each fire once, however often the watch runs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, Engine, func, select

from ledger.compliance import ComplianceLedger
from ledger.compliance_tables import tax_line_records as _records
from ledger.compliance_tables import tax_nexus_alerts as _alerts
from ledger.db import READ_ONLY, insert_or_ignore
from ledger.entries import require_aware_utc
from tax import Registration
from tax.nexus import ALERT_LEVELS, Threshold, thresholds_in_force


@dataclass(frozen=True, slots=True)
class NexusPosition:
    threshold: Threshold
    window_start: datetime
    window_end: datetime
    sales: int  # minor units of the threshold's currency
    transactions: int
    percent: int
    registered: bool

    @property
    def jurisdiction(self) -> str:
        return self.threshold.jurisdiction


@dataclass(frozen=True, slots=True)
class NexusAlert:
    jurisdiction: str
    level: int
    threshold_from: date
    currency: str
    sales: int
    transactions: int
    percent: int
    window_start: datetime
    window_end: datetime
    raised_at: datetime


def _registered(jurisdiction: str, registrations: Sequence[Registration], day: date) -> bool:
    return any(r.jurisdiction == jurisdiction and r.in_force(day) for r in registrations)


def _totals(
    conn: Connection, jurisdictions: list[str], currency: str, start: datetime, end: datetime
) -> dict[str, tuple[int, int]]:
    r = _records
    invoices = func.count(func.distinct(r.c.document_id)).filter(r.c.document_kind == "invoice")
    query = (
        select(r.c.jurisdiction, func.coalesce(func.sum(r.c.line_net), 0), invoices)
        .where(
            r.c.jurisdiction.in_(jurisdictions),
            r.c.currency == currency,
            r.c.component_index == 0,
            r.c.tax_point_at >= start,
            r.c.tax_point_at < end,
        )
        .group_by(r.c.jurisdiction)
    )
    return {str(j): (int(sales), int(count)) for j, sales, count in conn.execute(query)}


def nexus_positions(
    engine: Engine,
    thresholds: Sequence[Threshold],
    registrations: Sequence[Registration],
    day: date,
) -> list[NexusPosition]:
    """Every threshold in force on ``day`` with the running totals of its window."""
    in_force = thresholds_in_force(list(thresholds), day)
    groups: dict[tuple[str, datetime, datetime], list[Threshold]] = defaultdict(list)
    for t in in_force:
        groups[(t.currency, *t.window(day))].append(t)
    positions = []
    with engine.connect().execution_options(**READ_ONLY) as conn:
        for (currency, start, end), members in sorted(groups.items()):
            totals = _totals(conn, [t.jurisdiction for t in members], currency, start, end)
            for t in members:
                sales, count = totals.get(t.jurisdiction, (0, 0))
                positions.append(
                    NexusPosition(
                        t,
                        start,
                        end,
                        sales,
                        count,
                        t.percent(sales, count),
                        _registered(t.jurisdiction, registrations, day),
                    )
                )
        conn.rollback()
    return sorted(positions, key=lambda p: p.jurisdiction)


def raise_alerts(
    engine: Engine, positions: Sequence[NexusPosition], *, at: datetime
) -> list[NexusAlert]:
    """Record the alerts due (unregistered, at or past a level); the ones new now."""
    at = require_aware_utc(at, "at")
    raised = []
    with engine.begin() as conn:
        for p in positions:
            if p.registered:
                continue
            for level in ALERT_LEVELS:
                if p.percent < level:
                    continue
                alert = NexusAlert(
                    p.jurisdiction,
                    level,
                    p.threshold.valid_from,
                    p.threshold.currency,
                    p.sales,
                    p.transactions,
                    p.percent,
                    p.window_start,
                    p.window_end,
                    at,
                )
                inserted = conn.execute(
                    insert_or_ignore(conn, _alerts)
                    .values(
                        jurisdiction=alert.jurisdiction,
                        level=level,
                        threshold_from=alert.threshold_from,
                        currency=alert.currency,
                        sales=alert.sales,
                        transactions=alert.transactions,
                        percent=alert.percent,
                        window_start=alert.window_start,
                        window_end=alert.window_end,
                        raised_at=at,
                    )
                    .on_conflict_do_nothing(
                        index_elements=["jurisdiction", "level", "threshold_from"]
                    )
                    .returning(_alerts.c.id)
                ).first()
                if inserted is not None:
                    raised.append(alert)
    return raised


def nexus_alerts(engine: Engine) -> list[NexusAlert]:
    with engine.connect().execution_options(**READ_ONLY) as conn:
        rows = conn.execute(select(_alerts).order_by(_alerts.c.id)).all()
    return [
        NexusAlert(
            r.jurisdiction,
            int(r.level),
            r.threshold_from,
            r.currency,
            int(r.sales),
            int(r.transactions),
            int(r.percent),
            r.window_start,
            r.window_end,
            r.raised_at,
        )
        for r in rows
    ]


def watch(
    engine: Engine, thresholds: Sequence[Threshold], *, at: datetime
) -> tuple[list[NexusPosition], list[NexusAlert]]:
    """One day's watch: the positions against the registrations recorded now, and the
    alerts it raised."""
    at = require_aware_utc(at, "at")
    registrations = ComplianceLedger(engine).registrations()
    positions = nexus_positions(engine, thresholds, registrations, at.date())
    return positions, raise_alerts(engine, positions, at=at)
