"""``dunwell dunning``: show, pause, resume, retry now or end an invoice's dunning run.

Each command is a Temporal query or update on ``dunning-<invoice_id>``; the workflow's
validators decide, and a refusal is printed with exit status 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from billing.dunning import EndAction, InvoiceEndAction
from dunwell import temporal
from dunwell.settings import get_settings
from workflows.dunning import DunningView, DunningWorkflow, EndRequest, dunning_workflow_id

dunning_app = typer.Typer(help="Dunning runs: show, pause, resume, retry now, end.")

Action = Callable[[WorkflowHandle[DunningWorkflow, Any]], Awaitable[DunningView]]


def summary(view: DunningView) -> dict[str, Any]:
    state = view.state
    return {
        "invoice_id": view.invoice_id,
        "phase": view.phase.value,
        "decision": view.decision.kind,
        "policy": state.policy_key,
        "attempts": len(state.attempts),
        "last_decline": state.last_reason,
        "next_retry_at": view.next_retry_at.isoformat() if view.next_retry_at else None,
        "paused_by_ops": state.paused_by_ops,
        "cancelled": state.cancelled_at is not None,
        "charge_in_flight": view.charge_in_flight,
        "notifications_sent": list(view.sent_notifications),
    }


async def _run(invoice_id: str, action: Action) -> int:
    client = await temporal.connect(get_settings())
    handle: WorkflowHandle[DunningWorkflow, Any] = client.get_workflow_handle(
        dunning_workflow_id(invoice_id)
    )
    try:
        view = await action(handle)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        reason = cause.type if isinstance(cause, ApplicationError) else "refused"
        typer.echo(f"refused ({reason}): {cause or err}", err=True)
        return 1
    except RPCError as err:
        typer.echo(f"temporal: {err.status.name}: {err.message}", err=True)
        return 1
    typer.echo(json.dumps(summary(view), indent=2))
    return 0


def _exit(invoice_id: str, action: Action) -> None:
    code = asyncio.run(_run(invoice_id, action))
    # The temporalio Rust bridge can abort the interpreter at shutdown (sdk-python
    # issue 300); a process that held a client leaves without that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


InvoiceArg = Annotated[str, typer.Argument(help="The invoice in dunning")]


@dunning_app.command()
def show(invoice_id: InvoiceArg) -> None:
    """Phase, next retry, last decline and notifications of a dunning run."""
    _exit(invoice_id, lambda h: h.query(DunningWorkflow.state))


@dunning_app.command()
def pause(invoice_id: InvoiceArg) -> None:
    """Pause retries until resumed."""
    _exit(invoice_id, lambda h: h.execute_update(DunningWorkflow.pause))


@dunning_app.command()
def resume(invoice_id: InvoiceArg) -> None:
    """Resume a paused run."""
    _exit(invoice_id, lambda h: h.execute_update(DunningWorkflow.resume))


@dunning_app.command("retry-now")
def retry_now(invoice_id: InvoiceArg) -> None:
    """One immediate retry, as soon as the card network rules allow."""
    _exit(invoice_id, lambda h: h.execute_update(DunningWorkflow.retry_now))


@dunning_app.command()
def end(
    invoice_id: InvoiceArg,
    action: Annotated[EndAction | None, typer.Option(help="Subscription end action")] = None,
    invoice_action: Annotated[
        InvoiceEndAction | None, typer.Option(help="Invoice end action")
    ] = None,
) -> None:
    """End dunning now (defaults: the policy's end actions)."""
    request = EndRequest(action=action, invoice_action=invoice_action)
    _exit(invoice_id, lambda h: h.execute_update(DunningWorkflow.end, request))
