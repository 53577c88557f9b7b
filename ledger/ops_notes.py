"""Credit and debit notes ops issue by hand, with who issued them.

The note itself is the invoice store's (``InvoiceStore.credit_note`` /
``debit_note``): its limits, its tax at the invoice's frozen rates, its ledger entry
and its idempotency key. The actor is recorded next to it under the note's id; a
request retried with the same key finds the note and records the actor once (the
first actor stays). Imports the invoice store and the compliance tables only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, select

from ledger.compliance_tables import invoice_note_actors as _actors
from ledger.db import READ_ONLY, insert_or_ignore
from ledger.invoices import CreditNoteView, DebitNoteView, InvoiceStore, NoteLine
from ledger.invoices.checks import aware, check_text

NoteKind = Literal["credit", "debit"]


@dataclass(frozen=True, slots=True)
class OpsNote:
    note: CreditNoteView | DebitNoteView
    actor: str


def issue_ops_note(
    store: InvoiceStore,
    invoice_id: str,
    *,
    kind: NoteKind,
    key: str,
    lines: Sequence[NoteLine],
    reason: str,
    actor: str,
    at: datetime,
    also: Callable[[Connection, OpsNote], None] | None = None,
) -> OpsNote:
    """Issue the note (the store's checks refuse before anything is written) and record
    who issued it; ``also`` runs in the transaction that records who (the API's audit
    row). The note itself is keyed by ``key``, so a retry after a failure there finds
    it and completes the rest."""
    check_text(actor, "actor", 200)
    at = aware(at, "at")
    if kind == "credit":
        note: CreditNoteView | DebitNoteView = store.credit_note(
            invoice_id, key=key, lines=lines, reason=reason, at=at
        )
    else:
        note = store.debit_note(invoice_id, key=key, lines=lines, reason=reason, at=at)
    with store.engine.begin() as conn:
        conn.execute(
            insert_or_ignore(conn, _actors)
            .values(note_id=note.id, invoice_id=invoice_id, actor=actor, recorded_at=at)
            .on_conflict_do_nothing(index_elements=["note_id"])
        )
        recorded = conn.execute(
            select(_actors.c.actor).where(_actors.c.note_id == note.id)
        ).scalar_one()
        issued = OpsNote(note, str(recorded))
        if also is not None:
            also(conn, issued)
    return issued


def note_actor(store: InvoiceStore, note_id: str) -> str | None:
    with store.engine.connect().execution_options(**READ_ONLY) as conn:
        found = conn.execute(
            select(_actors.c.actor).where(_actors.c.note_id == note_id)
        ).scalar_one_or_none()
    return None if found is None else str(found)
