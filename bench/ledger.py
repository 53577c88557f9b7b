"""Ledger posting throughput on PostgreSQL, with raw psycopg floors measured in the same run.

Creates its own database, migrates it (so the journal tables carry their real
constraints and triggers), and measures postings per second for two-posting transfers
between ``--accounts`` accounts:

1. ``single``: one entry per transaction through ``Ledger.post``.
2. ``batched``: ``Ledger.post_batch``, ``--batch-size`` entries per transaction.
3. ``raw_single``: a raw psycopg floor for (1), one entry per transaction: insert the
   entry, insert its postings, update the two balances, commit.
4. ``raw_batched``: the raw psycopg floor for (2). The same entries (same accounts,
   amounts, descriptions, metadata and content hashes, keys of the same shape), in
   transactions of the same ``--batch-size``, sent as the statements ``post_batch``
   sends on PostgreSQL, with psycopg directly on the same tables of the same database:
   lock the batch's accounts (``SELECT ... FOR UPDATE`` in id order), insert the
   entries in one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (idempotency_key) DO
   NOTHING RETURNING`` (each column's values in one array), insert the postings in one
   ``INSERT ... SELECT FROM unnest(...)``, move the accounts' balances by their net
   deltas in one ``UPDATE ... FROM unnest(...)``, commit. The database does
   all it does for Dunwell: the postings' guard trigger per row, the balanced-entry
   constraint trigger per entry at commit, foreign keys, indexes, the row locks. What
   the floor leaves out is Dunwell's Python: building the statements through SQLAlchemy,
   the content hash (computed before the floor is timed), account resolution, the
   unit-of-work retry wrapper and the ``PostedEntry`` results. Building the entry
   requests is outside the timing in both. No COPY: Dunwell does not use it.

Each repeat runs every phase once; ``batched`` and ``raw_batched`` run back to back and
swap order from one repeat to the next, so the tables' growth and the machine's drift
fall on both. Reports medians of ``--repeat`` repeats; ``batched_ratio`` is the median of
each repeat's batched / raw_batched (a pair measured seconds apart, where the ratio of
the medians could pair a fast moment with a slow one), ``single_ratio`` the ratio of
the medians of single and raw_single. The last line is one JSON object:
{"single_per_s", "batched_per_s", "raw_single_per_s", "raw_batched_per_s",
 "single_ratio", "batched_ratio"}

    .venv/bin/python bench/ledger.py [--entries 1000] [--batch-entries 6000] [--batch-size 500] [--repeat 5]
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
from ledger.entries import EntryRequest, content_hash  # noqa: E402

# The statements post_entries sends for a batch on PostgreSQL.
from ledger.journal import (  # noqa: E402
    _INSERT_ENTRIES_PG,
    _INSERT_POSTINGS_PG,
    _MOVE_BALANCES_PG,
)
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


_LOCK_ACCOUNTS = (
    "SELECT id, code, type, currency, customer_id, balance FROM ledger_accounts"
    " WHERE code = ANY(%s) ORDER BY id FOR UPDATE"
)
_ENTRY_COLUMNS = (
    "idempotency_key, content_hash, effective_at, description, metadata, reverses_entry_id,"
    " posting_count"
)


def bench_raw_batched(
    conninfo: str, codes: list[str], ids: dict[str, int], n: int, batch_size: int
) -> float:
    """The floor of ``bench_batched``: its SQL, sent with psycopg (see the docstring).
    Everything that does not need the entries' new ids is prepared before the timing."""
    run = uuid.uuid4().hex
    batches = []
    for offset in range(0, n, batch_size):
        requests = [_transfer(run, i, codes) for i in range(offset, min(n, offset + batch_size))]
        # Sorted by key, as post_batch inserts them.
        ordered = sorted(requests, key=lambda r: r.idempotency_key)
        entries = {
            "keys": [r.idempotency_key for r in ordered],
            "hashes": [
                content_hash(r, [str(p.account) for p in r.postings], None) for r in ordered
            ],
            "effective_ats": [r.effective_at for r in ordered],
            "descriptions": [r.description for r in ordered],
            "metadata": [r.metadata_json for r in ordered],
            "reverses": [None for _ in ordered],
            "counts": [len(r.postings) for r in ordered],
        }
        postings = {
            r.idempotency_key: [(ids[str(p.account)], p.currency, p.amount) for p in r.postings]
            for r in requests
        }
        deltas: dict[int, int] = {}
        for lines in postings.values():
            for account_id, _currency, amount in lines:
                deltas[account_id] = deltas.get(account_id, 0) + amount
        moves = [(account_id, delta) for account_id, delta in sorted(deltas.items()) if delta]
        accounts = sorted({str(p.account) for r in requests for p in r.postings})
        batches.append((accounts, entries, postings, moves))
    with psycopg.connect(conninfo) as conn:
        started = time.perf_counter()
        for accounts, entries, postings, moves in batches:
            with conn.cursor() as cur:
                cur.execute(_LOCK_ACCOUNTS, (accounts,))
                cur.fetchall()
                cur.execute(_INSERT_ENTRIES_PG, entries)
                new_ids: dict[str, int] = dict(cur.fetchall())
                rows = [
                    (entry_id, *posting)
                    for key, entry_id in sorted(new_ids.items(), key=lambda item: item[1])
                    for posting in postings[key]
                ]
                cur.execute(
                    _INSERT_POSTINGS_PG,
                    {
                        "entry_ids": [r[0] for r in rows],
                        "account_ids": [r[1] for r in rows],
                        "currencies": [r[2] for r in rows],
                        "amounts": [r[3] for r in rows],
                    },
                )
                cur.execute(
                    _MOVE_BALANCES_PG,
                    {"ids": [a for a, _ in moves], "deltas": [d for _, d in moves]},
                )
            conn.commit()
        return 2 * n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000, help="single-entry transactions")
    parser.add_argument("--batch-entries", type=int, default=6000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
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

        single, batched, raw, raw_batched = [], [], [], []
        for repeat in range(args.repeat):
            raw.append(bench_raw(conninfo, ids, args.entries))
            single.append(bench_single(ledger, codes, args.entries))
            pair = [
                lambda: batched.append(
                    bench_batched(ledger, codes, args.batch_entries, args.batch_size)
                ),
                lambda: raw_batched.append(
                    bench_raw_batched(
                        conninfo,
                        codes,
                        dict(zip(codes, ids, strict=True)),
                        args.batch_entries,
                        args.batch_size,
                    )
                ),
            ]
            for phase in pair if repeat % 2 == 0 else reversed(pair):
                phase()
        assert ledger.trial_balance().balanced
        # Every phase wrote all its postings (a floor that skipped rows would look fast).
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT count(*) FROM ledger_postings").fetchone()
        expected = 2 * (1 + args.repeat * 2 * (args.entries + args.batch_entries))
        assert row is not None and row[0] == expected, f"{row} postings, expected {expected}"

        result: dict[str, float] = {
            "single_per_s": round(statistics.median(single)),
            "batched_per_s": round(statistics.median(batched)),
            "raw_single_per_s": round(statistics.median(raw)),
            "raw_batched_per_s": round(statistics.median(raw_batched)),
        }
        result["single_ratio"] = round(statistics.median(single) / statistics.median(raw), 3)
        pairs = [b / r for b, r in zip(batched, raw_batched, strict=True)]
        result["batched_ratio"] = round(statistics.median(pairs), 3)
        print(f"runs (postings/s) single={[round(x) for x in single]}")
        print(f"runs (postings/s) batched={[round(x) for x in batched]}")
        print(f"runs (postings/s) raw_single={[round(x) for x in raw]}")
        print(f"runs (postings/s) raw_batched={[round(x) for x in raw_batched]}")
        print(f"runs batched / raw_batched={[round(x, 3) for x in pairs]}")
        print(f"single-entry transactions via Ledger.post: {result['single_per_s']} postings/s")
        print(
            f"batched via Ledger.post_batch ({args.batch_size} entries/batch): "
            f"{result['batched_per_s']} postings/s"
        )
        print(
            f"raw psycopg baseline, one entry per transaction: {result['raw_single_per_s']} postings/s"
        )
        print(
            f"raw psycopg floor, the same SQL as post_batch ({args.batch_size} entries/batch): "
            f"{result['raw_batched_per_s']} postings/s"
        )
        print(f"single / raw single: {result['single_ratio']}")
        print(f"batched / raw batched: {result['batched_ratio']} (target >= 0.5)")
        print(json.dumps(result))
    finally:
        engine.dispose()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
