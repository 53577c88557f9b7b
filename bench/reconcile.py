"""Payout reconciliation throughput, end to end, with a floor measured in the same run.

A payout of N balance transactions (default 10,000) is reconciled against a ledger that
holds the matching payments, with 1 % of them altered across the mismatch classes a
payout can show: ``missing_in_ledger``, ``amount``, ``currency``, ``duplicate`` (the
ledger side), ``fee`` and ``status`` (the gateway side), and the extra transactions
``unknown_type`` and ``unattributed_fee``. (``payout_total`` and ``payout_failed`` are
properties of the payout itself and ``missing_at_gateway`` and ``unsettled_aged`` of the
sweep; the tests inject those.)

The stack: a PostgreSQL database of its own, the Temporal dev server, the settlement
simulator (``dunwell.settlement_sim``, without localstripe: the charges are loaded
through its ``/_sim/charges`` endpoint, since localstripe would take minutes to make
100,000 of them) and ``dunwell worker`` as shipped, reading settlement from the
simulator. The ledger's payments are inserted with psycopg (one invoice per currency,
N partial payments citing the charges' payment intents), as renewals would have
recorded them.

Timed: from ``start_workflow`` of ``recon-payout-<id>`` until its result, i.e. every page
read over HTTP with sources expanded, matched, its lines stored, its fees posted to the
journal (one entry per transaction) and its exceptions opened, then the payout judged.
``reconciled_per_s`` is transactions over that time (median of ``--repeat`` payouts).

Floor, measured after each payout on the same stack: the same pages fetched raw over
HTTP (httpx, JSON parsed), and for each page the ledger payments selected by payment
intent and one row per transaction inserted into a scratch table shaped like
``settlement_lines``, each page committed, with psycopg directly: what any
reconciliation must at least do with these rows, without Dunwell's code, the matcher or
the journal. ``floor_per_s`` is N over that time.

History: the largest workflow history of the run, in KB (events' protobuf size).

    .venv/bin/python bench/reconcile.py [--n 10000] [--repeat 3]

Progress goes to stderr; the last line of stdout is one JSON object:
{"reconciled_per_s", "injected", "found", "false_positives", "max_history_kb",
 "floor_per_s", "ratio"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0] or ".").resolve() == REPO / "bench":
    sys.path[0] = str(REPO)  # bench/tax.py would shadow the tax package

import httpx  # noqa: E402
import psycopg  # noqa: E402
from temporalio.client import Client  # noqa: E402

from bench._stack import (  # noqa: E402
    BIN,
    Stack,
    free_port,
    http_ok,
    machine_load,
    progress,
    psycopg_url,
    stop_on_sigterm,
)
from dunwell.converter import data_converter  # noqa: E402
from dunwell.settlement_book import Book, SimConfig  # noqa: E402

DAY = 86_400
BASE = 1_893_456_000  # 2030-01-01T00:00:00Z, a midnight: payouts fall on day boundaries
SOURCED = ("missing_in_ledger", "amount", "currency", "duplicate", "fee", "status")
EXTRA = ("unknown_type", "unattributed_fee")
CLASSES = SOURCED + EXTRA


def post(base: str, path: str, body: dict[str, Any]) -> Any:
    response = httpx.post(f"{base}{path}", json=body, timeout=600)
    response.raise_for_status()
    return response.json()


def make_invoices(database_url: str) -> dict[str, str]:
    """One open invoice per currency, large enough for every partial payment."""
    from ledger.db import make_engine
    from ledger.invoices import CustomerTaxDetails, DraftLine, InvoiceStore
    from tax import Address, BuiltinTaxEngine, TaxableLine, TaxCustomer

    engine = make_engine(database_url)
    store = InvoiceStore(engine, issuer="bench")
    engine_tax = BuiltinTaxEngine(seller_country="IE")
    at = datetime.now(UTC)
    found = {}
    for currency in ("EUR", "USD"):
        draft = store.create_draft(
            key=f"bench-{uuid.uuid4().hex[:8]}",
            customer_id="bench-customer",
            subscription_id=None,
            currency=currency,
            lines=[DraftLine("a", "Settled charges", 10**13)],
        )
        quote = engine_tax.quote(
            [
                TaxableLine(line.line_id, line.amount, currency, line.tax_behavior)
                for line in draft.lines
            ],
            TaxCustomer(Address("DE")),
            (),
            at,
        )
        done = store.finalize(draft.id, quote=quote, customer_tax=CustomerTaxDetails("DE"), at=at)
        found[currency] = done.id
    engine.dispose()
    return found


def build_payout(
    r: int, n: int, rng: random.Random
) -> tuple[list[dict[str, Any]], list[tuple[str, str, int]], dict[int, str]]:
    """The gateway's charges, the ledger's payments (ref, currency, amount) and which
    charge index carries which injected class."""
    k = max(len(CLASSES), n // 100)
    picked = rng.sample(range(n), k)
    injected = {i: CLASSES[j % len(CLASSES)] for j, i in enumerate(picked)}
    book = Book(SimConfig())
    created = BASE + r * DAY - 3 * DAY
    charges, payments = [], []
    for i in range(n):
        amount, country = 1_000 + (i * 7919) % 90_000, ("FR", "US")[i % 2]
        ref = f"pi_b{r}_{i}"
        cls = injected.get(i)
        charge: dict[str, Any] = {
            "id": f"ch_b{r}_{i}",
            "payment_intent": ref,
            "amount": amount,
            "currency": "EUR",
            "card_country": country,
            "created": created,
        }
        if cls == "fee":
            charge["fee"] = book.expected_fee(amount, country, False) + 100
        if cls == "status":
            charge["status"] = "pending"
        charges.append(charge)
        if cls == "missing_in_ledger":
            continue
        currency = "USD" if cls == "currency" else "EUR"
        payments.append((ref, currency, amount + (1 if cls == "amount" else 0)))
        if cls == "duplicate":
            payments.append((ref, "EUR", amount))
    return charges, payments, injected


def insert_payments(
    database_url: str, invoices: dict[str, str], payments: list[tuple[str, str, int]], tag: str
) -> None:
    now = datetime.now(UTC)
    rows = [
        (invoices[currency], f"bench:{tag}:{j}", ref, amount, now, False)
        for j, (ref, currency, amount) in enumerate(payments)
    ]
    with psycopg.connect(psycopg_url(database_url)) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO invoice_payments (invoice_id, idempotency_key, payment_ref, amount,"
            " paid_at, recovery) VALUES (%s, %s, %s, %s, %s, %s)",
            rows,
        )


def exceptions_of(database_url: str, payout_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(psycopg_url(database_url)) as conn:
        rows = conn.execute(
            "SELECT \"class\", gateway_ref, evidence->>'ledger_ref' FROM reconciliation_exceptions"
            " WHERE payout_id = %s",
            (payout_id,),
        ).fetchall()
    return [(str(cls), str(ref or txn)) for cls, txn, ref in rows]


def floor(sim: str, database_url: str, payout_id: str) -> tuple[float, int]:
    """Pages fetched raw; per page, payments selected and rows inserted with psycopg."""
    start = time.perf_counter()
    rows = 0
    with psycopg.connect(psycopg_url(database_url)) as conn, httpx.Client(timeout=60) as http:
        conn.execute("CREATE TEMP TABLE floor_lines (LIKE settlement_lines INCLUDING DEFAULTS)")
        conn.commit()
        cursor = None
        while True:
            params = {"payout": payout_id, "limit": 100, "expand[]": "data.source"}
            if cursor:
                params["starting_after"] = cursor
            page = http.get(f"{sim}/v1/balance_transactions", params=params).json()
            data = page["data"]
            refs = [
                t["source"].get("payment_intent")
                for t in data
                if isinstance(t["source"], dict) and t["source"].get("payment_intent")
            ]
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT p.payment_ref, p.amount, i.currency FROM invoice_payments p"
                    " JOIN invoices i ON i.id = p.invoice_id WHERE p.payment_ref = ANY(%s)",
                    (refs,),
                )
                cur.fetchall()
                now = datetime.now(UTC)
                cur.executemany(
                    "INSERT INTO floor_lines (txn_id, payout_id, kind, type, reporting_category,"
                    " amount, fee, net, currency, source, ledger_ref, created, available_on,"
                    " matched, classes, recorded_at) VALUES (%s, %s, 'payment', %s, %s, %s, %s,"
                    " %s, %s, %s, %s, %s, %s, true, '', %s)",
                    [
                        (
                            t["id"], payout_id, t["type"], t["reporting_category"], t["amount"],
                            t["fee"], t["net"], t["currency"].upper(),
                            t["source"]["id"] if isinstance(t["source"], dict) else t["source"],
                            t["source"].get("payment_intent") if isinstance(t["source"], dict) else None,
                            now, now, now,
                        )
                        for t in data
                    ],
                )  # fmt: skip
            conn.commit()
            rows += len(data)
            if not page["has_more"]:
                break
            cursor = data[-1]["id"]
    return time.perf_counter() - start, rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from workflows.reconcile_payout import ReconcileInput, ReconcilePayoutWorkflow, workflow_id

    rng = random.Random(args.seed)
    with Stack("reconcile") as stack:
        database_url = stack.start_database()
        stack.start_temporal()
        port = free_port()
        sim = f"http://127.0.0.1:{port}"
        stack.spawn(
            "settlement-sim",
            [str(BIN / "dunwell"), "settlement-sim", "--port", str(port), "--localstripe", "",
             "--tick-seconds", "0"],
        )  # fmt: skip
        stack._wait_until("settlement-sim", lambda: http_ok(f"{sim}/_sim/health"))
        os.environ["DUNWELL_SETTLEMENT_API_BASE"] = sim
        stack.start_worker()
        client = await Client.connect(stack.temporal_address, data_converter=data_converter)
        await stack.wait_for_worker(client)
        invoices = make_invoices(database_url)
        rates, floors, histories = [], [], []
        injected_total = found_total = false_total = 0
        for r in range(args.repeat):
            charges, payments, injected = build_payout(r, args.n, rng)
            for start in range(0, len(charges), 10_000):
                post(sim, "/_sim/charges", {"charges": charges[start : start + 10_000]})
            insert_payments(database_url, invoices, payments, f"{r}")
            expected = {(cls, f"pi_b{r}_{i}") for i, cls in injected.items() if cls in SOURCED}
            for i, cls in injected.items():
                if cls == "unknown_type":
                    made = post(
                        sim, "/_sim/other",
                        {"id": f"txn_odd_{r}_{i}", "type": "climate_order_purchase",
                         "reporting_category": "climate", "amount": -10},
                    )  # fmt: skip
                    expected.add((cls, made["id"]))
                elif cls == "unattributed_fee":
                    made = post(sim, "/_sim/fees", {"id": f"fee_{r}_{i}", "amount": 99})
                    expected.add((cls, made["id"]))
            (payout_id,) = post(sim, "/_sim/tick", {"now": BASE + r * DAY})["payouts"]
            total = len(charges) + sum(1 for c in injected.values() if c in EXTRA)
            progress(f"payout {payout_id}: {total} transactions, {len(expected)} altered")

            began = time.perf_counter()
            handle = await client.start_workflow(
                ReconcilePayoutWorkflow.run,
                ReconcileInput(payout_id, "bench"),
                id=workflow_id(payout_id),
                task_queue=stack.task_queue,
            )
            summary = await handle.result()
            elapsed = time.perf_counter() - began
            rates.append(total / elapsed)
            history = await handle.fetch_history()
            histories.append(sum(e.ByteSize() for e in history.events) / 1024)

            found = set(exceptions_of(database_url, payout_id))
            injected_total += len(expected)
            found_total += len(expected & found)
            false_total += len(found - expected)
            floor_s, floor_rows = floor(sim, database_url, payout_id)
            floors.append(floor_rows / floor_s)
            progress(
                f"  reconciled {summary.lines} lines in {elapsed:.2f} s ({rates[-1]:.0f}/s; "
                f"floor {floors[-1]:.0f}/s), {summary.matched} matched, "
                f"{len(expected & found)}/{len(expected)} found, {len(found - expected)} false, "
                f"history {histories[-1]:.1f} KB"
            )
    rate, floor_rate = statistics.median(rates), statistics.median(floors)
    return {
        "reconciled_per_s": round(rate, 1),
        "injected": injected_total,
        "found": found_total,
        "false_positives": false_total,
        "max_history_kb": round(max(histories), 1),
        "floor_per_s": round(floor_rate, 1),
        "ratio": round(rate / floor_rate, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="balance transactions per payout")
    parser.add_argument("--repeat", type=int, default=3, help="payouts (median reported)")
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.n < len(CLASSES) or args.repeat < 1:
        parser.error(f"--n must be at least {len(CLASSES)} and --repeat positive")
    stop_on_sigterm()
    progress(f"start: {machine_load()}")
    result = asyncio.run(run(args))
    progress(f"end: {machine_load()}")
    print(
        f"reconciled: {result['reconciled_per_s']} transactions/s end to end (target >= 2000) "
        f"against a floor of {result['floor_per_s']}/s (ratio {result['ratio']}); "
        f"injected {result['injected']}, found {result['found']}, "
        f"false positives {result['false_positives']}; largest history "
        f"{result['max_history_kb']} KB (target < 2048 at --n 100000)"
    )
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
