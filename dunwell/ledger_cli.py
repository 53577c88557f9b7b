"""``dunwell ledger ...``: ledger reports for ops and finance."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from billing.money import Money
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.posting import Ledger
from ledger.queries import TrialBalance

ledger_app = typer.Typer(help="Double-entry ledger reports.", no_args_is_help=True)


@ledger_app.callback()
def _ledger() -> None:
    """Double-entry ledger reports."""


@ledger_app.command("trial-balance")
def trial_balance_command(
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Defaults to DUNWELL_DATABASE_URL."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Debits, credits and net per currency; exit code 1 if any currency is off zero."""
    if database_url is None:
        database_url = get_settings().database_url
    engine = make_engine(database_url)
    try:
        report = Ledger(engine).trial_balance()
    finally:
        engine.dispose()
    typer.echo(_as_json(report) if as_json else _as_text(report))
    if not report.balanced:
        raise typer.Exit(code=1)


def _as_json(report: TrialBalance) -> str:
    return json.dumps(
        {
            "balanced": report.balanced,
            "currencies": [
                {"currency": t.currency, "debits": t.debits, "credits": t.credits, "net": t.net}
                for t in report.currencies
            ],
        }
    )


def _as_text(report: TrialBalance) -> str:
    lines = [f"{'currency':<8} {'debits':>20} {'credits':>20} {'net':>20}"]
    for t in report.currencies:
        cells = (Money(v, t.currency).format() for v in (t.debits, t.credits, t.net))
        lines.append(f"{t.currency:<8} " + " ".join(f"{cell:>20}" for cell in cells))
    if not report.currencies:
        lines.append("(no postings)")
    lines.append("balanced" if report.balanced else "NOT BALANCED")
    return "\n".join(lines)
