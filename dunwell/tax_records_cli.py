"""``dunwell tax certificate|registration|nexus ...``: record and list the compliance
records ops keep (the same checks as the ops API; a refusal writes nothing and exits 2)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Engine

from billing.money import Money
from dunwell.settings import get_settings
from ledger.compliance import ComplianceLedger
from ledger.db import make_engine
from ledger.nexus_watch import nexus_alerts, nexus_positions
from ledger.tax_records import (
    CertificateRecord,
    NexusRecord,
    RegistrationRecord,
    TaxRecordRefused,
    TaxRecords,
)
from ledger.unit_of_work import read
from stores.customers import get_customer
from tax import ExemptionCertificate, Registration, TaxType
from tax.nexus import load_thresholds

T = TypeVar("T")

certificate_app = typer.Typer(help="Customers' exemption certificates.", no_args_is_help=True)
registration_app = typer.Typer(help="The seller's tax registrations.", no_args_is_help=True)
nexus_app = typer.Typer(
    help="The seller's nexus changes and economic-nexus positions.", no_args_is_help=True
)

DatabaseUrl = Annotated[
    str | None, typer.Option("--database-url", help="Defaults to DUNWELL_DATABASE_URL.")
]
Actor = Annotated[str, typer.Option("--actor", help="Who records it (name or email).")]
JsonOut = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        typer.echo(f"dunwell tax: {option} must be an ISO date (YYYY-MM-DD)", err=True)
        raise typer.Exit(2) from None


def _optional_day(text: str | None, option: str) -> date | None:
    return None if text is None else _day(text, option)


@contextmanager
def _records(database_url: str | None) -> Iterator[TaxRecords]:
    engine: Engine = make_engine(database_url or get_settings().database_url)
    try:
        yield TaxRecords(engine)
    finally:
        engine.dispose()


def _run(work: Callable[[], T]) -> T:
    try:
        return work()
    except TaxRecordRefused as err:
        typer.echo(f"dunwell tax: refused ({err.code}): {err.message}", err=True)
        raise typer.Exit(2) from None


def _echo(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, default=str))
        return
    if not rows:
        typer.echo("(none)")
    for row in rows:
        typer.echo("  ".join(f"{k}={'-' if v is None else v}" for k, v in row.items()))


def _certificate_row(r: CertificateRecord) -> dict[str, Any]:
    c = r.certificate
    return {
        "id": r.id,
        "customer_id": r.customer_id,
        "jurisdiction": c.jurisdiction,
        "number": c.number,
        "valid_from": c.valid_from.isoformat(),
        "valid_to": None if c.valid_to is None else c.valid_to.isoformat(),
        "document_ref": c.document_ref,
        "actor": r.actor,
        "recorded_at": r.recorded_at.isoformat(),
    }


def _registration_row(r: RegistrationRecord) -> dict[str, Any]:
    g = r.registration
    return {
        "id": r.id,
        "jurisdiction": g.jurisdiction,
        "tax_type": None if g.tax_type is None else str(g.tax_type),
        "registration_number": g.registration_number,
        "valid_from": g.valid_from.isoformat(),
        "valid_to": None if g.valid_to is None else g.valid_to.isoformat(),
        "note": r.note,
        "actor": r.actor,
        "recorded_at": r.recorded_at.isoformat(),
    }


def _nexus_row(r: NexusRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "jurisdiction": r.jurisdiction,
        "basis": r.basis,
        "valid_from": r.valid_from.isoformat(),
        "valid_to": None if r.valid_to is None else r.valid_to.isoformat(),
        "note": r.note,
        "actor": r.actor,
        "recorded_at": r.recorded_at.isoformat(),
    }


@certificate_app.command("add")
def certificate_add(
    customer: Annotated[str, typer.Option("--customer", help="Dunwell customer id.")],
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", help='e.g. "US-TX", "DE".')],
    number: Annotated[str, typer.Option("--number", help="The certificate's number.")],
    valid_from: Annotated[str, typer.Option("--from", help="First day valid (ISO date).")],
    document: Annotated[str, typer.Option("--document", help="Where the document is kept.")],
    actor: Actor,
    valid_to: Annotated[str | None, typer.Option("--to", help="Last day valid.")] = None,
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Record an exemption certificate (recording its number again supersedes it)."""
    cert = ExemptionCertificate(
        jurisdiction,
        number,
        _day(valid_from, "--from"),
        _optional_day(valid_to, "--to"),
        document,
    )
    with _records(database_url) as records:
        if read(records.engine, lambda conn: get_customer(conn, customer)) is None:
            typer.echo(f"dunwell tax: refused (unknown_customer): no {customer!r}", err=True)
            raise typer.Exit(2)
        recorded = _run(
            lambda: records.record_certificate(customer, cert, actor=actor, at=datetime.now(UTC))
        )
    _echo([_certificate_row(recorded)], as_json)


@certificate_app.command("list")
def certificate_list(
    customer: Annotated[str | None, typer.Option("--customer")] = None,
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Every certificate record, oldest first."""
    with _records(database_url) as records:
        found = records.certificates(customer_id=customer)
    _echo([_certificate_row(r) for r in found], as_json)


@registration_app.command("add")
def registration_add(
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", help='e.g. "EU", "US-NY".')],
    number: Annotated[str, typer.Option("--number", help="The registration id.")],
    valid_from: Annotated[str, typer.Option("--from", help="First day in force.")],
    actor: Actor,
    valid_to: Annotated[str | None, typer.Option("--to", help="Last day in force.")] = None,
    tax_type: Annotated[TaxType | None, typer.Option("--tax-type")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Record a registration (recording its number again, e.g. with --to, supersedes it)."""
    reg = Registration(
        jurisdiction,
        tax_type,
        _day(valid_from, "--from"),
        _optional_day(valid_to, "--to"),
        number,
    )
    with _records(database_url) as records:
        recorded = _run(
            lambda: records.record_registration(reg, actor=actor, at=datetime.now(UTC), note=note)
        )
    _echo([_registration_row(recorded)], as_json)


@registration_app.command("list")
def registration_list(
    jurisdiction: Annotated[str | None, typer.Option("--jurisdiction")] = None,
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Every registration record, oldest first."""
    with _records(database_url) as records:
        found = records.registrations(jurisdiction=jurisdiction)
    _echo([_registration_row(r) for r in found], as_json)


@nexus_app.command("add")
def nexus_add(
    jurisdiction: Annotated[str, typer.Option("--jurisdiction", help='e.g. "US-TX".')],
    basis: Annotated[str, typer.Option("--basis", help="economic or physical.")],
    valid_from: Annotated[str, typer.Option("--from", help="First day of nexus.")],
    actor: Actor,
    valid_to: Annotated[str | None, typer.Option("--to", help="Last day of nexus.")] = None,
    note: Annotated[str, typer.Option("--note")] = "",
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Record a nexus change."""
    start, end = _day(valid_from, "--from"), _optional_day(valid_to, "--to")
    with _records(database_url) as records:
        recorded = _run(
            lambda: records.record_nexus(
                jurisdiction,
                basis=basis,
                valid_from=start,
                valid_to=end,
                actor=actor,
                at=datetime.now(UTC),
                note=note,
            )
        )
    _echo([_nexus_row(recorded)], as_json)


@nexus_app.command("list")
def nexus_list(
    jurisdiction: Annotated[str | None, typer.Option("--jurisdiction")] = None,
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Every nexus record, oldest first."""
    with _records(database_url) as records:
        found = records.nexus(jurisdiction=jurisdiction)
    _echo([_nexus_row(r) for r in found], as_json)


@nexus_app.command("position")
def nexus_position(
    day: Annotated[str | None, typer.Option("--day", help="Default: today (UTC).")] = None,
    as_json: JsonOut = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Per economic-nexus threshold: running sales and transactions, percent, registered."""
    on = _day(day, "--day") if day else datetime.now(UTC).date()
    with _records(database_url) as records:
        registrations = ComplianceLedger(records.engine).registrations()
        positions = nexus_positions(records.engine, load_thresholds(), registrations, on)
    _echo(
        [
            {
                "jurisdiction": p.jurisdiction,
                "registered": p.registered,
                "percent": p.percent,
                "sales": Money(p.sales, p.threshold.currency).format(),
                "threshold": Money(p.threshold.sales_minor, p.threshold.currency).format(),
                "transactions": p.transactions,
                "transactions_threshold": p.threshold.transactions,
                "period": p.threshold.period,
                "window": f"{p.window_start.date()}..{p.window_end.date()}",
            }
            for p in positions
        ],
        as_json,
    )


@nexus_app.command("alerts")
def nexus_alert_list(as_json: JsonOut = False, database_url: DatabaseUrl = None) -> None:
    """Every alert the daily nexus watch raised (80 % and 100 %, once per threshold)."""
    with _records(database_url) as records:
        alerts = nexus_alerts(records.engine)
    _echo(
        [
            {
                "jurisdiction": a.jurisdiction,
                "level": a.level,
                "percent": a.percent,
                "sales": Money(a.sales, a.currency).format(),
                "transactions": a.transactions,
                "raised_at": a.raised_at.isoformat(),
            }
            for a in alerts
        ],
        as_json,
    )
