"""``dunwell refund`` and ``dunwell refunds``: refund a paid invoice, list refunds.

``refund`` reserves the refund in the database, starts ``refund-<key>`` on Temporal
and waits for it, so it leaves through ``os._exit`` like every process that held a
Temporal client. A refusal (unknown invoice, not paid, above what remains refundable,
unknown reason) prints why, exits 2 and changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import string
import sys
from typing import Annotated

import typer

from api.routes.refund_ops import refund_out
from api.services.refunds import request_refund
from dunwell import temporal
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.invoices import InvoiceError, InvoiceStore
from ledger.invoices.refunds import OPS_REASONS, RefundView


def _hard_exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _store() -> InvoiceStore:
    settings = get_settings()
    return InvoiceStore(make_engine(settings.database_url), issuer=settings.invoice_issuer)


def new_key() -> str:
    """A fresh idempotency key, letters only (never a digit run a card guard refuses)."""
    return "ops-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))


def _line(view: RefundView) -> str:
    return (
        f"{view.key}  {view.invoice_id}  {view.amount:>10} {view.currency}  {view.status:<9} "
        f"{view.refund_id or '-'}  note {view.credit_note_id or '-'}  {view.source}/{view.reason}"
    )


async def _refund(
    invoice_id: str, amount: int | None, reason: str, actor: str, note: str | None, key: str
) -> int:
    settings = get_settings()
    try:
        view = await request_refund(
            lambda: temporal.connect(settings),
            _store(),
            settings.task_queue,
            invoice_id=invoice_id,
            key=key,
            amount=amount,
            reason=reason,
            actor=actor,
            note=note,
        )
    except InvoiceError as err:
        typer.echo(f"dunwell refund: refused: {err}", err=True)
        return 2
    typer.echo(json.dumps(refund_out(view).model_dump(mode="json"), indent=2))
    return 0 if view.status in ("recorded", "requested") else 1


def refund_command(
    invoice_id: Annotated[str, typer.Argument(help="The invoice to refund")],
    reason: Annotated[str, typer.Option(help=", ".join(OPS_REASONS))],
    amount: Annotated[
        int | None, typer.Option(help="Minor units, tax included; default: all refundable")
    ] = None,
    actor: Annotated[str, typer.Option(help="Who asks")] = "cli",
    note: Annotated[str | None, typer.Option()] = None,
    key: Annotated[
        str | None, typer.Option(help="Idempotency key: the same key answers the same refund")
    ] = None,
) -> None:
    """Refund a paid invoice fully or partly through the gateway, with a credit note."""
    if reason not in OPS_REASONS:
        typer.echo(f"dunwell refund: reason must be one of {', '.join(OPS_REASONS)}", err=True)
        raise typer.Exit(2)
    if amount is not None and amount <= 0:
        typer.echo("dunwell refund: amount must be a positive number of minor units", err=True)
        raise typer.Exit(2)
    _hard_exit(asyncio.run(_refund(invoice_id, amount, reason, actor, note, key or new_key())))


def refunds_command(
    invoice: Annotated[str | None, typer.Option(help="Only this invoice's refunds")] = None,
    limit: int = 100,
) -> None:
    """Refunds, oldest first: asked by ops and made in the Stripe dashboard alike."""
    found = _store().list_refunds(invoice_id=invoice, limit=limit)
    for view in found:
        typer.echo(_line(view))
    if not found:
        typer.echo("(no refunds)")
