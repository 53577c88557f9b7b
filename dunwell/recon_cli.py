"""``dunwell recon``: the reconciliation exceptions queue, payout runs and backfills.

``list``, ``show`` and ``resolve`` read and write the database (through the
exceptions store); ``run`` and ``backfill`` start workflows on Temporal and leave
through ``os._exit`` like every process that held a Temporal client.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime
from typing import Annotated, Any

import typer
from temporalio.common import WorkflowIDConflictPolicy

from api.routes.recon_ops import exception_out, report_csv
from billing.reconciliation.model import ExceptionClass
from dunwell import temporal
from dunwell.recon_schedule import backfill
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.reconciliation import runs
from ledger.reconciliation.errors import ReconciliationError
from ledger.reconciliation.exceptions import ExceptionAction, ExceptionStatus, ExceptionStore
from ledger.unit_of_work import read
from workflows.reconcile_payout import ReconcileInput, ReconcilePayoutWorkflow, workflow_id

recon_app = typer.Typer(help="Reconciliation with gateway settlements.", no_args_is_help=True)


def _store() -> ExceptionStore:
    return ExceptionStore(make_engine(get_settings().database_url))


def _hard_exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _print_runs(limit: int) -> None:
    engine = make_engine(get_settings().database_url)
    rows = read(engine, lambda c: runs.list_runs(c, limit=limit))
    for row in rows:
        report = row["report"] or {}
        typer.echo(
            f"{row['payout_id']}  {row['arrival_date']:%Y-%m-%d %H:%M}  {row['amount']:>12} "
            f"{row['currency']}  payout {row['payout_status']:<10} run {row['status']:<11} "
            f"matched {report.get('matched', 0)}/{report.get('lines', 0)}  "
            f"exceptions {report.get('exceptions', 0)}"
        )
    if not rows:
        typer.echo("(no payout runs)")


@recon_app.command("list")
def list_command(
    status: Annotated[
        str, typer.Option(help="open, acknowledged, resolved, written_off, ignored or all")
    ] = "open",
    exception_class: Annotated[str | None, typer.Option("--class")] = None,
    payout: Annotated[str | None, typer.Option()] = None,
    limit: int = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Exceptions as JSON.")] = False,
) -> None:
    """Payout runs (latest first), then the exceptions (open ones by default)."""
    try:
        found = _store().list(
            status=None if status == "all" else ExceptionStatus(status),
            cls=ExceptionClass(exception_class) if exception_class else None,
            payout_id=payout,
            limit=limit,
        )
    except (ValueError, ReconciliationError) as err:
        typer.echo(f"dunwell recon list: {err}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps([exception_out(x).model_dump(mode="json") for x in found]))
        return
    typer.echo("Payout runs")
    _print_runs(limit)
    typer.echo(f"\nExceptions ({status})")
    for x in found:
        typer.echo(
            f"{x.id:>6}  {x.status.value:<12} {x.cls.value:<18} {x.payout_id or '-':<24} "
            f"{x.gateway_ref or '-':<28} {x.amount if x.amount is not None else '':>10} "
            f"{x.currency or ''}"
        )
    if not found:
        typer.echo("(no exceptions)")


@recon_app.command("show")
def show_command(
    target: Annotated[str, typer.Argument(help="An exception id, or a payout id (po_…)")],
    output: Annotated[str, typer.Option("--format", help="json or csv (payouts)")] = "json",
) -> None:
    """An exception with its evidence and actions, or a payout run's report."""
    if target.startswith("po_"):
        engine = make_engine(get_settings().database_url)
        row = read(engine, lambda c: runs.run_row(c, target))
        if row is None or row["report"] is None:
            typer.echo(f"no finished reconciliation run for {target}", err=True)
            raise typer.Exit(1)
        body: dict[str, Any] = dict(row["report"])
        typer.echo(report_csv(body) if output == "csv" else json.dumps(body, indent=2))
        return
    try:
        found = _store().get(int(target))
    except (ValueError, ReconciliationError) as err:
        typer.echo(f"dunwell recon show: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(exception_out(found).model_dump_json(indent=2))


@recon_app.command("resolve")
def resolve_command(
    exception_id: int,
    actor: Annotated[str, typer.Option(help="Who is acting (name or email)")],
    action: Annotated[
        str, typer.Option(help="acknowledge, resolve, write_off, ignore")
    ] = "resolve",
    entry: Annotated[int | None, typer.Option(help="The adjusting entry's id")] = None,
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Move an exception: acknowledge it, resolve it with the adjusting entry, write it
    off or ignore it."""
    try:
        done = _store().act(
            exception_id,
            ExceptionAction(action),
            actor=actor,
            at=datetime.now(UTC),
            note=note,
            adjusting_entry_id=entry,
        )
    except (ValueError, ReconciliationError) as err:
        typer.echo(f"dunwell recon resolve: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(exception_out(done).model_dump_json(indent=2))


async def _run(payout_id: str) -> int:
    settings = get_settings()
    client = await temporal.connect(settings)
    handle = await client.start_workflow(
        ReconcilePayoutWorkflow.run,
        ReconcileInput(payout_id, "ops"),
        id=workflow_id(payout_id),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    summary = await handle.result()
    typer.echo(json.dumps(summary.__dict__, indent=2))
    return 0


@recon_app.command("run")
def run_command(payout_id: str) -> None:
    """Reconcile one payout now and print the run's summary."""
    _hard_exit(asyncio.run(_run(payout_id)))


async def _backfill(start: date, end: date) -> int:
    settings = get_settings()
    client = await temporal.connect(settings)
    for sweep in await backfill(client, settings.task_queue, start, end):
        typer.echo(f"swept {sweep}")
    return 0


@recon_app.command("backfill")
def backfill_command(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (inclusive)")],
) -> None:
    """Sweep each day of a range (payouts arriving that day); safe to run again."""
    try:
        first, last = date.fromisoformat(start), date.fromisoformat(end)
        if last < first:
            raise ValueError(f"--to {last} is before --from {first}")
    except ValueError as err:
        typer.echo(f"dunwell recon backfill: {err}", err=True)
        raise typer.Exit(2) from None
    _hard_exit(asyncio.run(_backfill(first, last)))
