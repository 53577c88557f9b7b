"""The ``dunwell`` command."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from dunwell.audit_cli import audit_command
from dunwell.dispute_cli import disputes_command
from dunwell.dunning_cli import dunning_app
from dunwell.events_cli import events_app
from dunwell.gateway_cli import gateway_app
from dunwell.invoice_cli import invoice_app
from dunwell.ledger_cli import ledger_app
from dunwell.recon_cli import recon_app
from dunwell.refund_cli import refund_command, refunds_command
from dunwell.review_cli import review_app
from dunwell.settings import Settings, get_settings
from dunwell.tax_cli import tax_app

app = typer.Typer(help="Dunwell billing orchestration.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger", help="Ledger reports.")
app.add_typer(tax_app, name="tax", help="Tax reports and compliance records.")
app.add_typer(invoice_app, name="invoice", help="Credit and debit notes issued by hand.")
app.add_typer(dunning_app, name="dunning", help="Dunning runs: show, pause, resume, retry, end.")
app.add_typer(review_app, name="review", help="Manual reviews of failed plan changes.")
app.add_typer(recon_app, name="recon", help="Reconciliation: exceptions, payout runs, backfill.")
app.add_typer(gateway_app, name="gateway", help="Gateway outage alerts.")
app.add_typer(events_app, name="events", help="Outbound events: endpoints, deliveries, replay.")
app.command("refund")(refund_command)
app.command("refunds")(refunds_command)
app.command("disputes")(disputes_command)
app.command("audit")(audit_command)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as err:
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
        typer.echo(f"dunwell: invalid settings: {messages}", err=True)
        raise typer.Exit(2) from None


def _served_settings(command: str) -> Settings:
    """Settings for a long-running service, which must be told where it runs.

    Settings default to dev so a newcomer's ``dunwell dev`` needs nothing; a service
    started without ``DUNWELL_ENV`` could be a production deployment that forgot it, and
    would then run with dev's placeholder secrets. ``dunwell dev`` and the tests set it.
    """
    if not os.environ.get("DUNWELL_ENV", "").strip():
        typer.echo(
            f"dunwell {command}: DUNWELL_ENV is not set; set it to production for a "
            "deployment (dev or test only on a development machine; dunwell dev sets it "
            "for the processes it starts)",
            err=True,
        )
        raise typer.Exit(2)
    return _settings()


def _hard_exit(code: int) -> None:
    # The temporalio Rust bridge can abort the interpreter during shutdown
    # (sdk-python issue 300); processes holding a Temporal client leave this way.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def dev() -> None:
    """Start the whole stack locally: Temporal, localstripe, SMTP sink, API, worker."""
    from dunwell.devstack import run_dev

    raise typer.Exit(run_dev(_settings()))


# The API's event loop hands work to other threads (grouped database writes, the
# Temporal client's bridge), and each answer needs the GIL back. With Python's default
# 5 ms switch interval, a busy loop keeps the GIL for whole slices and every answer waits
# for one; 1 ms keeps those waits short (webhook intake, bench/webhooks.py).
API_SWITCH_INTERVAL_S = 0.001


@app.command()
def api() -> None:
    """Serve the HTTP API (server, portal, webhooks, ops)."""
    import uvicorn

    settings = _served_settings("api")
    sys.setswitchinterval(API_SWITCH_INTERVAL_S)
    uvicorn.run(
        "api.app:create_served_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=False,  # request lines may carry tokens; routes log what they need
    )
    _hard_exit(0)


@app.command()
def worker() -> None:
    """Run the Temporal worker (workflows and activities)."""
    import asyncio

    from worker import run_worker

    settings = _served_settings("worker")
    code = 0
    try:
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        code = 0
    except Exception as err:  # report, then leave through the safe exit
        typer.echo(f"dunwell worker: {err}", err=True)
        code = 1
    _hard_exit(code)


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    database_url: Annotated[str | None, typer.Option(help="Defaults to settings")] = None,
) -> None:
    """Apply database migrations (the only way Dunwell's schema is made)."""
    from ledger.migrate import current, upgrade

    url = database_url or _settings().database_url
    upgrade(url, revision)
    typer.echo(f"database at revision {current(url)}")


@app.command()
def demo(
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Do not wait for the first renewal")
    ] = False,
) -> None:
    """Create demo customers and subscriptions on a running `make dev` stack."""
    from dunwell.demo import DemoError, run_demo

    try:
        run_demo(_settings(), wait_for_renewal=not no_wait)
    except DemoError as err:
        typer.echo(f"dunwell demo: {err}", err=True)
        raise typer.Exit(1) from None


@app.command("payload-key")
def payload_key(
    key_id: Annotated[str, typer.Option("--id", help="Key id stored with each payload")] = "k1",
) -> None:
    """Print a new payload-encryption key entry for DUNWELL_PAYLOAD_KEYS (id:base64key)."""
    from dunwell.codec import PayloadKeyError, PayloadKeys

    entry = PayloadKeys.generate(key_id)
    try:
        PayloadKeys.parse(entry)
    except PayloadKeyError as err:
        typer.echo(f"dunwell payload-key: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(entry)


@app.command()
def localstripe(host: str = "127.0.0.1", port: int = 8420) -> None:
    """Run localstripe, the fake Stripe API and Stripe.js (development and tests only)."""
    from dunwell.fake_gateway import serve
    from dunwell.local_stack import LocalStackMissing

    try:
        serve(port, host)
    except LocalStackMissing as err:
        typer.echo(f"dunwell localstripe: {err}", err=True)
        raise typer.Exit(2) from None


@app.command(
    "settlement-sim",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def settlement_sim(ctx: typer.Context) -> None:
    """Run the settlement simulator beside localstripe (development and tests only);
    ``--help`` lists its options."""
    from dunwell.settlement_sim import main

    main(list(ctx.args))


@app.command("smtp-sink")
def smtp_sink(
    host: str = "127.0.0.1",
    port: int = 8025,
    directory: Annotated[Path, typer.Option("--dir")] = Path(".dunwell/mail"),
) -> None:
    """Run a local SMTP server that keeps every message as a file (development only)."""
    from dunwell.local_stack import LocalStackMissing
    from dunwell.smtp_sink import SmtpSink

    try:
        sink = SmtpSink(directory, host, port)
    except LocalStackMissing as err:
        typer.echo(f"dunwell smtp-sink: {err}", err=True)
        raise typer.Exit(2) from None
    sink.start()
    typer.echo(f"SMTP sink on {host}:{port}, messages in {directory}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    sink.stop()


@app.command("demo-receiver")
def demo_receiver(
    host: str = "127.0.0.1",
    port: int = 8426,
    secret_file: Annotated[Path, typer.Option()] = Path(".dunwell/demo-receiver.secret"),
) -> None:
    """Run the demo receiver: verify and log Dunwell's signed events (development only)."""
    import uvicorn

    from dunwell.demo_receiver import create_app

    typer.echo(f"demo receiver on http://{host}:{port}/events, secrets in {secret_file}")
    uvicorn.run(
        create_app(secret_file, out=lambda line: print(line, flush=True)),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
    )


def main() -> None:
    app()
