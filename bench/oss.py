"""The EU OSS quarterly return (``ledger.oss_return``) over a quarter of many line records.

Fills a fresh PostgreSQL database with ``--lines`` tax line records in one quarter
(set-based, ``generate_series``): B2C lines in every member state at its rate, a share
of reverse-charged, domestic and US lines the return leaves out, and credit note lines
on the previous quarter (its corrections). Then times the return, median of ``--runs``,
and a same-run floor: one bare aggregate over the same quarter's records
(``SELECT sum(tax_amount) ... WHERE recorded_at`` in the quarter), the least any return
must read. Target: the return of 1,000,000 lines in at most 30 s.
Run: .venv/bin/python bench/oss.py [--lines 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

# bench/ holds a ledger.py and a tax.py: keep this folder off the import path, or
# ``import ledger`` would import that script.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import psycopg
from psycopg import sql
from sqlalchemy import text

from ledger.db import make_engine
from ledger.migrate import upgrade
from ledger.oss_return import Quarter, oss_return

ADMIN_URL = os.environ.get(
    "DUNWELL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
QUARTER = Quarter(2026, 3)
STATES = "AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE"

# One row per line: which member state (i % 27), which kind (i % 50: 0 reverse charge,
# 1 the US, 2 a credit note on the previous quarter, else a B2C supply), a time in the
# quarter from i. Rates are a flat 20 %: the return groups by rate, the value is moot.
FILL = """
INSERT INTO tax_line_records (
    document_kind, document_id, invoice_id, line_id, component_index, currency,
    line_amount, tax_behavior, line_net, jurisdiction, tax_type, rate_ppm,
    taxable_amount, tax_amount, reason, detail, rate_table_version, tax_engine,
    tax_point_at, recorded_at)
SELECT
    CASE WHEN i % 50 = 2 THEN 'credit_note' ELSE 'invoice' END,
    'doc' || (i / 3), 'inv' || (i / 3), 'l' || (i % 3), 0, 'EUR',
    CASE WHEN i % 50 = 2 THEN -1000 ELSE 1000 END, 'exclusive',
    CASE WHEN i % 50 = 2 THEN -1000 ELSE 1000 END,
    CASE WHEN i % 50 = 1 THEN 'US-NY' ELSE (string_to_array(:states, ' '))[1 + i % 27] END,
    CASE WHEN i % 50 = 1 THEN 'sales_tax' ELSE 'vat' END,
    CASE WHEN i % 50 = 0 THEN 0 ELSE 200000 END,
    CASE WHEN i % 50 = 2 THEN -1000 ELSE 1000 END,
    CASE WHEN i % 50 = 0 THEN 0 WHEN i % 50 = 2 THEN -200 ELSE 200 END,
    CASE WHEN i % 50 = 0 THEN 'reverse_charge' ELSE 'standard_rated' END,
    '', 'bench', 'builtin',
    CASE WHEN i % 50 = 2 THEN :start - interval '40 days' ELSE :start + (i % 7776000) * interval '1 second' END,
    :start + (i % 7776000) * interval '1 second'
FROM generate_series(1, :lines) AS i
"""


def _database() -> str:
    name = f"dunwell_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


def _drop(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def measure(lines: int, runs: int) -> tuple[float, float]:
    """(median seconds of the return, median seconds of the floor) on a fresh database."""
    url = _database()
    try:
        upgrade(url)
        engine = make_engine(url)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(FILL), {"states": STATES, "start": QUARTER.start, "lines": lines})
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE tax_line_records"))
        print(f"filled {lines:,} line records in {time.perf_counter() - started:.1f} s")
        floor_query = text(
            "SELECT sum(tax_amount) FROM tax_line_records "
            "WHERE recorded_at >= :start AND recorded_at < :end"
        )
        returns, floors = [], []
        for run in range(runs):
            started = time.perf_counter()
            report = oss_return(engine, QUARTER, seller_country="IE")
            returns.append(time.perf_counter() - started)
            started = time.perf_counter()
            with engine.connect() as conn:
                conn.execute(floor_query, {"start": QUARTER.start, "end": QUARTER.end}).one()
            floors.append(time.perf_counter() - started)
            supplies = sum(r.documents for r in report.rows)
            print(
                f"run {run + 1}: return {returns[-1]:.2f} s ({len(report.rows)} rows, "
                f"{len(report.corrections)} corrections, {supplies:,} documents), "
                f"floor {floors[-1]:.2f} s"
            )
        engine.dispose()
    finally:
        _drop(url)
    return statistics.median(returns), statistics.median(floors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    seconds, floor = measure(args.lines, args.runs)
    print(
        f"median: oss return {seconds:.2f} s, floor {floor:.2f} s "
        f"({seconds / floor:.1f}x the floor; target <= 30 s)"
    )
    print(json.dumps({"oss_return_s": round(seconds, 4), "oss_floor_s": round(floor, 4)}))


if __name__ == "__main__":
    main()
