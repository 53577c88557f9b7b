"""Built-in tax engine throughput: 10-line invoices across mixed jurisdictions, in process;
then finalizations/s (``bench/finalize.py``) and the OSS return of a quarter of
1,000,000 line records on PostgreSQL with its floor (``bench/oss.py``).

Prints quotes/s and lines/s (median of several runs); the last line is one JSON object.
Run: .venv/bin/python bench/tax.py [--runs 5] [--seconds 1.0] [--oss-lines 1000000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType

# This script is named like the package it measures: keep its own folder off the
# import path, or ``import tax`` would import this file.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from tax import (
    Address,
    BuiltinTaxEngine,
    ExemptionCertificate,
    Registration,
    TaxableLine,
    TaxBehavior,
    TaxCustomer,
    TaxType,
)
from tax.places import US_STATES

LINES_PER_INVOICE = 10
SINCE = date(2020, 1, 1)

REGISTRATIONS = [
    Registration("EU", TaxType.VAT, SINCE, None, "EU-OSS"),
    *(
        Registration(c, None, SINCE, None, c)
        for c in ("GB", "CH", "NO", "AU", "NZ", "SG", "JP", "IN")
    ),
    Registration("CA", TaxType.GST, SINCE, None, "CA-GST"),
    Registration("CA-QC", TaxType.QST, SINCE, None, "QST"),
    Registration("CA-BC", TaxType.PST, SINCE, None, "PST"),
    *(Registration(f"US-{s}", TaxType.SALES_TAX, SINCE, None, s) for s in sorted(US_STATES)),
]

CUSTOMERS = [
    (TaxCustomer(Address("DE")), "EUR"),
    (TaxCustomer(Address("FR"), vat_id="FR40303265045"), "EUR"),
    (TaxCustomer(Address("DE"), vat_id="DE136695977"), "EUR"),
    (TaxCustomer(Address("GB")), "GBP"),
    (TaxCustomer(Address("CH")), "CHF"),
    (TaxCustomer(Address("JP")), "JPY"),
    (TaxCustomer(Address("CA", "QC")), "CAD"),
    (TaxCustomer(Address("CA", "BC")), "CAD"),
    (TaxCustomer(Address("US", "NY")), "USD"),
    (TaxCustomer(Address("US", "TX"), exemption_certificates=(
        ExemptionCertificate("US-TX", "EX", SINCE, None, "doc"),)), "USD"),
    (TaxCustomer(Address("US", "CA")), "USD"),
    (TaxCustomer(Address("BR")), "BRL"),
]  # fmt: skip


def invoices() -> list[tuple[list[TaxableLine], TaxCustomer]]:
    out = []
    for n, (who, currency) in enumerate(CUSTOMERS):
        lines = [
            TaxableLine(
                f"l{i}",
                1_000 + 137 * i + n,
                currency,
                TaxBehavior.INCLUSIVE if i % 3 == 0 else TaxBehavior.EXCLUSIVE,
            )
            for i in range(LINES_PER_INVOICE)
        ]
        out.append((lines, who))
    return out


def run_once(
    engine: BuiltinTaxEngine, work: list[tuple[list[TaxableLine], TaxCustomer]], seconds: float
) -> tuple[float, float]:
    at = datetime(2026, 1, 10, 12, tzinfo=UTC)
    quotes = lines = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for invoice, who in work:
            engine.quote(invoice, who, REGISTRATIONS, at)
            quotes += 1
            lines += len(invoice)
    return quotes / elapsed, lines / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--invoices", type=int, default=2_000, help="finalizations per run")
    parser.add_argument("--finalize-runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--oss-lines", type=int, default=1_000_000, help="line records")
    parser.add_argument("--oss-runs", type=int, default=3)
    args = parser.parse_args()
    engine = BuiltinTaxEngine(seller_country="IE")
    work = invoices()
    run_once(engine, work, 0.2)  # warm-up
    results = [run_once(engine, work, args.seconds) for _ in range(args.runs)]
    quotes_per_s = statistics.median(r[0] for r in results)
    lines_per_s = statistics.median(r[1] for r in results)
    print(f"jurisdictions: {len(CUSTOMERS)} customers, {LINES_PER_INVOICE} lines per quote")
    for i, (q, n) in enumerate(results, 1):
        print(f"run {i}: {q:,.0f} quotes/s, {n:,.0f} lines/s")
    print(
        f"median: {quotes_per_s:,.0f} quotes/s, {lines_per_s:,.0f} lines/s (target 20,000 lines/s)"
    )
    finalizations_per_s = _bench("finalize").measure(
        args.invoices, args.finalize_runs, args.threads
    )
    oss_s, oss_floor_s = _bench("oss").measure(args.oss_lines, args.oss_runs)
    print(
        f"median: OSS return of {args.oss_lines:,} line records {oss_s:.2f} s, floor "
        f"{oss_floor_s:.2f} s ({oss_s / oss_floor_s:.1f}x; target <= 30 s)"
    )
    print(
        json.dumps(
            {
                "quote_lines_per_s": round(lines_per_s),
                "finalizations_per_s": round(finalizations_per_s, 1),
                "quotes_per_s": round(quotes_per_s),
                "oss_return_s": round(oss_s, 2),
                "oss_floor_s": round(oss_floor_s, 2),
            }
        )
    )


def _bench(name: str) -> ModuleType:
    # bench/ is not a package, and this file's name shadows the tax package on sys.path.
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"dunwell_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    main()
