"""``dunwell tax ...``: tax liability reports for finance."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from billing.money import Money
from dunwell.settings import get_settings
from ledger.db import make_engine
from ledger.tax_report import LiabilityReport, TaxReportError, parse_bound, tax_liability

tax_app = typer.Typer(help="Tax liability reports.", no_args_is_help=True)


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"


@tax_app.callback()
def _tax() -> None:
    """Tax liability reports."""


@tax_app.command("report")
def report_command(
    start: Annotated[str, typer.Option("--from", help="First day or instant (ISO, UTC).")],
    end: Annotated[str, typer.Option("--to", help="End, exclusive (ISO, UTC).")],
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="text, json or csv.")
    ] = ReportFormat.TEXT,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Defaults to DUNWELL_DATABASE_URL."),
    ] = None,
) -> None:
    """Tax per jurisdiction, type, currency and rate for documents issued in [from, to)."""
    try:
        period = (parse_bound(start, "--from"), parse_bound(end, "--to"))
        if database_url is None:
            database_url = get_settings().database_url
        engine = make_engine(database_url)
        try:
            report = tax_liability(engine, start=period[0], end=period[1])
        finally:
            engine.dispose()
    except TaxReportError as err:
        typer.echo(f"dunwell tax report: {err}", err=True)
        raise typer.Exit(2) from None
    if output_format is ReportFormat.CSV:
        rendered = report.to_csv()
    elif output_format is ReportFormat.JSON:
        rendered = json.dumps(report.as_dict()) + "\n"
    else:
        rendered = _as_text(report)
    if output is None:
        typer.echo(rendered, nl=False)
    else:
        output.write_text(rendered, encoding="utf-8")


def _as_text(report: LiabilityReport) -> str:
    lines = [
        f"tax liability {report.start.isoformat()} to {report.end.isoformat()} (exclusive)",
        f"{'jurisdiction':<12} {'type':<9} {'rate %':>8} {'reason':<16} "
        f"{'taxable':>18} {'tax':>16} {'docs':>6}",
    ]
    for row in report.rows:
        taxable = Money(row.taxable_amount, row.currency).format()
        tax = Money(row.tax_amount, row.currency).format()
        lines.append(
            f"{row.jurisdiction:<12} {row.tax_type:<9} {row.rate_ppm / 10_000:>8g} "
            f"{row.reason:<16} {taxable:>18} {tax:>16} {row.documents:>6}"
        )
    if not report.rows:
        lines.append("(no documents in the period)")
    return "\n".join(lines) + "\n"
