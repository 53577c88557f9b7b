"""``dunwell tax ...``: tax liability reports and the OSS return for finance, and the
compliance records ops keep (``certificate``, ``registration``, ``nexus``)."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from billing.money import Money
from dunwell.settings import get_settings
from dunwell.tax_records_cli import certificate_app, nexus_app, registration_app
from ledger.db import make_engine
from ledger.oss_return import OssReturn, OssReturnError, Quarter, oss_return
from ledger.tax_report import LiabilityReport, TaxReportError, parse_bound, tax_liability

tax_app = typer.Typer(help="Tax reports and compliance records.", no_args_is_help=True)
tax_app.add_typer(certificate_app, name="certificate")
tax_app.add_typer(registration_app, name="registration")
tax_app.add_typer(nexus_app, name="nexus")


class ReportFormat(StrEnum):
    TEXT = "text"
    JSON = "json"
    CSV = "csv"


@tax_app.callback()
def _tax() -> None:
    """Tax reports and compliance records."""


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


@tax_app.command("oss")
def oss_command(
    quarter: Annotated[str, typer.Option("--quarter", help="The quarter, e.g. 2026Q3.")],
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="text, json or csv.")
    ] = ReportFormat.TEXT,
    seller_country: Annotated[
        str | None,
        typer.Option("--seller-country", help="Member state of establishment (settings')."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file.")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Defaults to DUNWELL_DATABASE_URL."),
    ] = None,
) -> None:
    """The EU One-Stop-Shop return of a quarter: per member state and rate, taxable
    amount and VAT, and the corrections of earlier quarters."""
    try:
        period = Quarter.parse(quarter)
        if database_url is None or seller_country is None:
            settings = get_settings()
            database_url = database_url or settings.database_url
            seller_country = seller_country or settings.seller_country
        engine = make_engine(database_url)
        try:
            report = oss_return(engine, period, seller_country=seller_country)
        finally:
            engine.dispose()
    except OssReturnError as err:
        typer.echo(f"dunwell tax oss: {err}", err=True)
        raise typer.Exit(2) from None
    if output_format is ReportFormat.CSV:
        rendered = report.to_csv()
    elif output_format is ReportFormat.JSON:
        rendered = json.dumps(report.as_dict()) + "\n"
    else:
        rendered = _oss_text(report)
    if output is None:
        typer.echo(rendered, nl=False)
    else:
        output.write_text(rendered, encoding="utf-8")


def _oss_text(report: OssReturn) -> str:
    lines = [
        f"OSS return {report.quarter} (seller established in "
        f"{report.seller_country or 'no member state'})",
        f"{'section':<11} {'state':<5} {'rate %':>7} {'taxable':>18} {'VAT':>16} "
        f"{'docs':>6} corrects",
    ]
    for row in report.rows:
        lines.append(
            f"{'supply':<11} {row.member_state:<5} {row.rate_ppm / 10_000:>7g} "
            f"{Money(row.taxable_amount, row.currency).format():>18} "
            f"{Money(row.vat_amount, row.currency).format():>16} {row.documents:>6}"
        )
    for c in report.corrections:
        lines.append(
            f"{'correction':<11} {c.member_state:<5} {c.rate_ppm / 10_000:>7g} "
            f"{Money(c.taxable_amount, c.currency).format():>18} "
            f"{Money(c.vat_amount, c.currency).format():>16} {c.documents:>6} "
            f"{c.corrects_quarter}"
        )
    if not report.rows and not report.corrections:
        lines.append("(no OSS supplies in the quarter)")
    return "\n".join(lines) + "\n"
