"""Gapless numbering per issuer under concurrent finalization and rollbacks (PostgreSQL)."""

from __future__ import annotations

import re
import threading
from datetime import datetime

from sqlalchemy import Connection, Engine, text

from ledger.invoices import DraftLine, InvoiceStatus, InvoiceStore, NoteLine
from tax import Address
from tests.invoices.conftest import T0, details_for, fresh, quote_for

THREADS = 8
PER_THREAD = 25


class Sabotaged(Exception):
    pass


class RollbackAfterNumbering(InvoiceStore):
    """Fails a finalization after its entry was posted and its number taken, so the
    whole transaction rolls back (a crash just before commit)."""

    def _next_number(self, conn: Connection, series: str, at: datetime) -> str:
        number = super()._next_number(conn, series, at)
        raise Sabotaged(f"rolled back holding {number}")


def _sequence(number: str) -> int:
    match = re.fullmatch(r"DW-2026-(\d{6})", number)
    assert match, number
    return int(match.group(1))


def test_concurrent_finalization_is_gapless(pg_engine: Engine) -> None:
    issuer = fresh("issuer")
    store = InvoiceStore(pg_engine, issuer=issuer)
    saboteur = RollbackAfterNumbering(pg_engine, issuer=issuer)
    address = Address("DE")
    drafts = [
        store.create_draft(
            key=fresh("inv"),
            customer_id=f"cus-{i % 5}-{issuer}",
            subscription_id=None,
            currency="EUR",
            lines=[DraftLine("a", "Plan", 1_000 + i), DraftLine("b", "Seats", 250)],
        )
        for i in range(THREADS * PER_THREAD)
    ]
    quotes = {d.id: quote_for(d, address, T0) for d in drafts}
    failed: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def worker(chunk: list[str]) -> None:
        barrier.wait()
        for n, invoice_id in enumerate(chunk):
            try:
                if n % 5 == 2:
                    try:
                        saboteur.finalize(
                            invoice_id,
                            quote=quotes[invoice_id],
                            customer_tax=details_for(address),
                            at=T0,
                        )
                    except Sabotaged:
                        failed.append(invoice_id)
                        continue
                store.finalize(
                    invoice_id, quote=quotes[invoice_id], customer_tax=details_for(address), at=T0
                )
            except BaseException as exc:  # reported below
                errors.append(exc)

    ids = [d.id for d in drafts]
    threads = [threading.Thread(target=worker, args=(ids[i::THREADS],)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert len(failed) == THREADS * 5

    finals = [store.get(i) for i in ids]
    numbered = sorted(_sequence(v.number) for v in finals if v.number)
    assert numbered == list(range(1, len(numbered) + 1))
    assert len(numbered) == THREADS * PER_THREAD - len(failed)
    assert all(store.get(i).status is InvoiceStatus.DRAFT for i in failed)
    with pg_engine.connect() as conn:
        posted = conn.execute(
            text("SELECT count(*) FROM ledger_entries WHERE idempotency_key = ANY(:keys)"),
            {"keys": [f"invoice:{i}:finalized" for i in ids]},
        ).scalar_one()
    assert posted == len(numbered)

    # The rolled-back invoices finalize later and continue the sequence.
    for invoice_id in failed:
        store.finalize(
            invoice_id, quote=quotes[invoice_id], customer_tax=details_for(address), at=T0
        )
    numbered = sorted(_sequence(store.get(i).number or "") for i in ids)
    assert numbered == list(range(1, THREADS * PER_THREAD + 1))


def test_note_series_are_separate_and_gapless(pg_engine: Engine) -> None:
    issuer = fresh("issuer")
    store = InvoiceStore(pg_engine, issuer=issuer)
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=fresh("cus"),
        subscription_id=None,
        currency="EUR",
        lines=[DraftLine("a", "Plan", 100_000)],
    )
    invoice = store.finalize(
        draft.id,
        quote=quote_for(draft, Address("DE"), T0),
        customer_tax=details_for(Address("DE")),
        at=T0,
    )
    assert invoice.number == "DW-2026-000001"
    numbers = [
        store.credit_note(
            invoice.id, key=fresh("cn"), lines=[NoteLine("a", 100)], reason="r", at=T0
        ).number
        for _ in range(3)
    ]
    debit = store.debit_note(
        invoice.id, key=fresh("dn"), lines=[NoteLine("a", 1)], reason="r", at=T0
    )
    assert numbers == ["DW-CN-2026-000001", "DW-CN-2026-000002", "DW-CN-2026-000003"]
    assert debit.number == "DW-DN-2026-000001"
