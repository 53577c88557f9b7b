"""``dunwell invoice credit|debit INVOICE --lines LINE=AMOUNT,... --reason ... --actor ...``:
credit and debit notes issued by hand, with the invoice store's limits, tax at the
invoice's frozen rates, the ledger entry and the actor (``ledger.ops_notes``). A
refusal changes nothing and exits 2. ``--key`` makes a retry return the first note."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

import typer

from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.invoices import InvoiceError, InvoiceStore, NoteLine
from ledger.ops_notes import NoteKind, issue_ops_note

invoice_app = typer.Typer(
    help="Credit and debit notes on finalized invoices.", no_args_is_help=True
)

Lines = Annotated[
    str,
    typer.Option("--lines", help="LINE_ID=AMOUNT[,LINE_ID=AMOUNT...], net amounts in minor units."),
]
Reason = Annotated[str, typer.Option("--reason", help="Printed on the note.")]
Actor = Annotated[str, typer.Option("--actor", help="Who issues it (name or email).")]
Key = Annotated[
    str | None, typer.Option("--key", help="Idempotency key; a new one when not given.")
]
DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Defaults to DUNWELL_DATABASE_URL.")
]


@invoice_app.callback()
def _invoice() -> None:
    """Credit and debit notes on finalized invoices."""


def parse_lines(text: str) -> list[NoteLine]:
    lines = []
    for part in text.split(","):
        line_id, eq, amount = part.strip().rpartition("=")
        if not eq or not line_id or not amount.isdigit():
            raise typer.BadParameter(f"{part!r} is not LINE_ID=AMOUNT", param_hint="--lines")
        lines.append(NoteLine(line_id, int(amount)))
    return lines


def _issue(
    kind: NoteKind,
    invoice: str,
    lines: str,
    reason: str,
    actor: str,
    key: str | None,
    database_url: str | None,
) -> None:
    parsed = parse_lines(lines)
    key = key or uuid.uuid4().hex
    settings = get_settings()
    engine = make_engine(database_url or settings.database_url)
    try:
        issued = issue_ops_note(
            InvoiceStore(engine, issuer=settings.invoice_issuer),
            invoice,
            kind=kind,
            key=f"ops:{kind}:{key}",
            lines=parsed,
            reason=reason,
            actor=actor,
            at=datetime.now(UTC),
        )
    except InvoiceError as err:
        typer.echo(f"dunwell invoice {kind}: refused ({type(err).__name__}): {err}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    note = issued.note
    typer.echo(
        json.dumps(
            {
                "id": note.id,
                "number": note.number,
                "kind": kind,
                "invoice_id": note.invoice_id,
                "currency": note.currency,
                "subtotal": note.subtotal,
                "tax_total": note.tax_total,
                "total": note.total,
                "actor": issued.actor,
                "key": key,
            }
        )
    )


@invoice_app.command("credit")
def credit(
    invoice: Annotated[str, typer.Argument(help="Invoice id.")],
    lines: Lines,
    reason: Reason,
    actor: Actor,
    key: Key = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue a credit note (never more than remains creditable)."""
    _issue("credit", invoice, lines, reason, actor, key, database_url)


@invoice_app.command("debit")
def debit(
    invoice: Annotated[str, typer.Argument(help="Invoice id.")],
    lines: Lines,
    reason: Reason,
    actor: Actor,
    key: Key = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue a debit note (charge more on lines of the invoice)."""
    _issue("debit", invoice, lines, reason, actor, key, database_url)
