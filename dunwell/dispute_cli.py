"""``dunwell disputes``: every dispute, its state and what it moved (database only)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from api.routes.dispute_ops import dispute_out
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.disputes.store import DisputeStore


def disputes_command(
    status: Annotated[str | None, typer.Option(help="Only disputes in this status")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only disputes not closed")] = False,
    limit: int = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Disputes (chargebacks), oldest first: state, invoice, subscription, money moved."""
    store = DisputeStore(make_engine(get_settings().database_url))
    found = store.list(status=status, open_only=open_only, limit=limit)
    if as_json:
        typer.echo(json.dumps([dispute_out(v).model_dump(mode="json") for v in found], indent=2))
        return
    for v in found:
        typer.echo(
            f"{v.dispute_id}  {v.status:<22} {v.amount:>10} {v.currency}  invoice {v.invoice_id}  "
            f"subscription {v.subscription_id or '-'}  withdrawn {v.withdrawn} fees {v.fees}"
        )
    if not found:
        typer.echo("(no disputes)")
