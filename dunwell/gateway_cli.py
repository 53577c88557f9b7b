"""``dunwell gateway alerts``: workflows whose charge waits out a gateway outage.

Lists the running subscriptions and dunning runs whose ``DunwellGatewayAlert`` search
attribute is set (see ``workflows/gateway_outage.py``), one JSON object a line with
``--json``.
Exit status 1 when Temporal cannot be asked.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import asdict
from typing import Annotated

import typer
from temporalio.service import RPCError

from dunwell import temporal
from dunwell.settings import get_settings
from workflows.gateway_alerts import gateway_alerts

gateway_app = typer.Typer(help="The payment gateway as ops see it: outage alerts.")


async def _alerts(as_json: bool, limit: int) -> int:
    try:
        client = await temporal.connect(get_settings())
        alerts = await gateway_alerts(client, limit)
    except RPCError as err:
        typer.echo(f"temporal: {err.status.name}: {err.message}", err=True)
        return 1
    except RuntimeError as err:  # the client could not connect
        typer.echo(f"temporal: {err}", err=True)
        return 1
    if as_json:
        for alert in alerts:
            typer.echo(json.dumps(asdict(alert)))
        return 0
    if not alerts:
        typer.echo("no gateway alerts")
        return 0
    typer.echo(f"{'workflow':<44} {'failure':<16} status")
    for alert in alerts:
        typer.echo(f"{alert.workflow_id:<44} {alert.failure:<16} {alert.status or '—'}")
    return 0


@gateway_app.command()
def alerts(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many")] = 1000,
) -> None:
    """Subscriptions and dunning runs whose charge is retried through a gateway outage."""
    code = asyncio.run(_alerts(as_json, limit))
    # A process that held a Temporal client leaves without the interpreter's teardown
    # (the Rust bridge can abort there: sdk-python issue 300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
