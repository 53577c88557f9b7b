"""Ledger posting throughput on PostgreSQL.

Creates its own database, migrates it, and measures postings per second for
(1) one two-posting entry per transaction through ``Ledger.post``, (2) ``Ledger.post_batch``,
(3) a raw psycopg baseline doing the same writes (insert entry, insert postings, update
balances, one transaction per entry) on the same tables. Reports medians of --repeat runs;
the last line is one JSON object.

    .venv/bin/python bench/ledger.py --entries 1000 --batch-entries 5000 --batch-size 500
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

# Run as a script, this file's directory comes first on sys.path and this module would
# shadow the ``ledger`` package it measures.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

from ledger.accounts import AccountSpec  # noqa: E402
from ledger.db import make_engine  # noqa: E402
from ledger.entries import EntryRequest  # noqa: E402
from ledger.migrate import upgrade  # noqa: E402
from ledger.models import AccountType  # noqa: E402
from ledger.posting import Ledger  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _transfer(run: str, i: int, codes: list[str]) -> EntryRequest:
    return EntryRequest.transfer(
        idempotency_key=f"{run}-{i}",
        effective_at=datetime.now(UTC),
        description="bench",
        debit=codes[i % len(codes)],
        credit=codes[(i + 1) % len(codes)],
        amount=100 + i % 7,
        currency="USD",
    )


def bench_single(ledger: Ledger, codes: list[str], n: int) -> float:
    run = uuid.uuid4().hex
    requests = [_transfer(run, i, codes) for i in range(n)]
    started = time.perf_counter()
    for request in requests:
        ledger.post(request)
    return 2 * n / (time.perf_counter() - started)


def bench_batched(ledger: Ledger, codes: list[str], n: int, batch_size: int) -> float:
    run = uuid.uuid4().hex
    requests = [_transfer(run, i, codes) for i in range(n)]
    started = time.perf_counter()
    for offset in range(0, n, batch_size):
        ledger.post_batch(requests[offset : offset + batch_size])
    return 2 * n / (time.perf_counter() - started)


def bench_raw(conninfo: str, ids: list[int], n: int) -> float:
    run = uuid.uuid4().hex
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        for i in range(n):
            debit, credit = ids[i % len(ids)], ids[(i + 1) % len(ids)]
            amount = 100 + i % 7
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO ledger_entries (idempotency_key, content_hash, effective_at,"
                    " description, metadata, posting_count)"
                    " VALUES (%s, %s, %s, 'bench', '{}', 2) RETURNING id",
                    (f"raw-{run}-{i}", "0" * 64, datetime.now(UTC)),
                )
                row = cur.fetchone()
                assert row is not None
                entry_id = row[0]
                cur.execute(
                    "INSERT INTO ledger_postings (entry_id, account_id, currency, amount)"
                    " VALUES (%s, %s, 'USD', %s), (%s, %s, 'USD', %s)",
                    (entry_id, debit, amount, entry_id, credit, -amount),
                )
                for account_id, delta in sorted([(debit, amount), (credit, -amount)]):
                    cur.execute(
                        "UPDATE ledger_accounts SET balance = balance + %s WHERE id = %s",
                        (delta, account_id),
                    )
            conn.commit()
        return 2 * n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000, help="single-entry transactions")
    parser.add_argument("--batch-entries", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    name = f"dunwell_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_URL.rsplit("/", 1)[0]
    conninfo = f"{base}/{name}"
    url = conninfo.replace("postgresql://", "postgresql+psycopg://", 1)
    engine = make_engine(url)
    try:
        upgrade(url)
        ledger = Ledger(engine)
        rows = ledger.get_or_create_accounts(
            [AccountSpec(f"bench:{i}:USD", AccountType.ASSET, "USD") for i in range(args.accounts)]
        )
        codes = [row.code for row in rows]
        ids = [row.id for row in rows]
        ledger.post(_transfer("warmup", 0, codes))

        single, batched, raw = [], [], []
        for _ in range(args.repeat):
            raw.append(bench_raw(conninfo, ids, args.entries))
            single.append(bench_single(ledger, codes, args.entries))
            batched.append(bench_batched(ledger, codes, args.batch_entries, args.batch_size))
        assert ledger.trial_balance().balanced

        result = {
            "single_per_s": round(statistics.median(single)),
            "batched_per_s": round(statistics.median(batched)),
            "raw_single_per_s": round(statistics.median(raw)),
        }
        result["single_ratio"] = round(result["single_per_s"] / result["raw_single_per_s"], 3)
        print(f"runs (postings/s) single={[round(x) for x in single]}")
        print(f"runs (postings/s) batched={[round(x) for x in batched]}")
        print(f"runs (postings/s) raw_single={[round(x) for x in raw]}")
        print(f"single-entry transactions via Ledger.post: {result['single_per_s']} postings/s")
        print(
            f"batched via Ledger.post_batch ({args.batch_size} entries/batch): "
            f"{result['batched_per_s']} postings/s"
        )
        print(
            f"raw psycopg baseline, one entry per transaction: {result['raw_single_per_s']} postings/s"
        )
        print(f"single / raw: {result['single_ratio']}")
        print(json.dumps(result))
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
