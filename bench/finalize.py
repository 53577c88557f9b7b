"""Invoice finalizations/s on PostgreSQL with gapless numbering and ledger posting.

Each run creates its drafts (3 lines each, mixed jurisdictions and currencies) and
their tax quotes first, then times only ``InvoiceStore.finalize`` from several threads
(one transaction each: freeze lines and rates, compliance records, next number under
the counter row lock, ledger entry). Prints each run and the median; the last line is
one JSON object. Uses its own database, dropped afterwards.

Run: .venv/bin/python bench/finalize.py [--invoices 2000] [--runs 3] [--threads 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

# Keep this folder off the import path (bench/tax.py would shadow the tax package).
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import psycopg
from psycopg import sql

from ledger.db import make_engine
from ledger.invoices import CustomerTaxDetails, DraftLine, InvoiceStore
from ledger.migrate import upgrade
from tax import (
    Address,
    BuiltinTaxEngine,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxCustomer,
    TaxQuote,
    TaxType,
)

ADMIN_URL = os.environ.get(
    "DUNWELL_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
AT = datetime(2026, 6, 1, tzinfo=UTC)
SINCE = date(2020, 1, 1)
REGISTRATIONS = [
    Registration("EU", TaxType.VAT, SINCE, None, "EU-OSS"),
    Registration("JP", None, SINCE, None, "T1"),
    Registration("CA", TaxType.GST, SINCE, None, "GST"),
    Registration("CA-QC", TaxType.QST, SINCE, None, "QST"),
    Registration("US-NY", TaxType.SALES_TAX, SINCE, None, "NY"),
]
PLACES = [
    (Address("DE"), "EUR"),
    (Address("FR"), "EUR"),
    (Address("CA", "QC"), "CAD"),
    (Address("US", "NY"), "USD"),
    (Address("JP"), "JPY"),
]
CUSTOMERS = 400


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


def _prepare(
    store: InvoiceStore, count: int, run: int
) -> list[tuple[str, TaxQuote, CustomerTaxDetails]]:
    engine = BuiltinTaxEngine(seller_country="IE")
    work = []
    for i in range(count):
        address, currency = PLACES[i % len(PLACES)]
        lines = [
            DraftLine("base", "Plan", 4_900 + i % 97),
            DraftLine("seats", "Seats", 1_200, TaxBehavior.INCLUSIVE),
            DraftLine("usage", "Usage", 333 + i % 13),
        ]
        draft = store.create_draft(
            key=f"bench-{run}-{i}",
            customer_id=f"cus-{i % CUSTOMERS}",
            subscription_id=f"sub-{i}",
            currency=currency,
            lines=lines,
        )
        quote = engine.quote(
            [TaxableLine(x.line_id, x.amount, currency, x.tax_behavior) for x in lines],
            TaxCustomer(address),
            REGISTRATIONS,
            AT,
        )
        details = CustomerTaxDetails(address.country, address.region, None, "Bench Co", None)
        work.append((draft.id, quote, details))
    return work


def _run(
    store: InvoiceStore, work: list[tuple[str, TaxQuote, CustomerTaxDetails]], threads: int
) -> float:
    chunks = [work[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def finalize(chunk: list[tuple[str, TaxQuote, CustomerTaxDetails]]) -> None:
        try:
            for invoice_id, quote, details in chunk:
                store.finalize(invoice_id, quote=quote, customer_tax=details, at=AT)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=finalize, args=(chunk,)) for chunk in chunks]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(work) / elapsed


def measure(invoices: int, runs: int, threads: int) -> float:
    """Median finalizations/s over ``runs`` runs on a fresh database (dropped after)."""
    url = _database()
    try:
        upgrade(url)
        engine = make_engine(url, pool_size=threads + 2)
        store = InvoiceStore(engine, issuer=f"bench-{uuid.uuid4().hex[:6]}")
        # Warm-up: accounts, the rate table record, connection pool.
        _run(store, _prepare(store, 50, -1), threads)
        rates = []
        for run in range(runs):
            work = _prepare(store, invoices, run)
            rate = _run(store, work, threads)
            rates.append(rate)
            print(f"run {run + 1}: {invoices} finalizations, {threads} threads: {rate:,.0f}/s")
        median = statistics.median(rates)
        print(f"median finalizations/s: {median:,.0f} (target >= 200)")
        engine.dispose()
    finally:
        _drop(url)
    return float(median)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    median = measure(args.invoices, args.runs, args.threads)
    print(json.dumps({"finalizations_per_s": round(median, 1)}))


if __name__ == "__main__":
    main()
