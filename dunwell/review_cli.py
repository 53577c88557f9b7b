"""``dunwell review``: show or resolve the manual review of a failed plan change.

Each command is a Temporal query or update on ``review-<invoice_id>``; the workflow's
validators decide, and a refusal is printed with exit status 1.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.routes.review_ops import review_out, review_workflow_id
from dunwell import temporal
from dunwell.settings import get_settings
from workflows.manual_review import (
    AcceptPaymentMethodRequest,
    ManualReviewWorkflow,
    WriteOffRequest,
)

review_app = typer.Typer(help="Manual reviews of failed plan changes.")

Handle = WorkflowHandle[ManualReviewWorkflow, Any]


async def _run(invoice_id: str, action: Callable[[Handle], Awaitable[object]] | None) -> int:
    client = await temporal.connect(get_settings())
    handle: Handle = client.get_workflow_handle(review_workflow_id(invoice_id))
    try:
        if action is not None:
            await action(handle)
        review = await handle.query(ManualReviewWorkflow.review)
        resolution = await handle.query(ManualReviewWorkflow.resolution)
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        reason = cause.type if isinstance(cause, ApplicationError) else "refused"
        typer.echo(f"refused ({reason}): {cause or err}", err=True)
        return 1
    except RPCError as err:
        typer.echo(f"temporal: {err.status.name}: {err.message}", err=True)
        return 1
    if review is None:
        typer.echo("the review has not started yet", err=True)
        return 1
    typer.echo(review_out(review, resolution).model_dump_json(indent=2))
    return 0


def _exit(invoice_id: str, action: Callable[[Handle], Awaitable[object]] | None) -> None:
    code = asyncio.run(_run(invoice_id, action))
    # A process that held a Temporal client leaves without the interpreter's teardown
    # (the Rust bridge can abort there: sdk-python issue 300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


InvoiceArg = Annotated[str, typer.Argument(help="The voided proration invoice under review")]


@review_app.command()
def show(invoice_id: InvoiceArg) -> None:
    """What failed and how the review was resolved."""
    _exit(invoice_id, None)


@review_app.command()
def retry(invoice_id: InvoiceArg) -> None:
    """Run the plan change again with the payment method on file."""
    _exit(invoice_id, lambda h: h.execute_update(ManualReviewWorkflow.retry))


@review_app.command("accept")
def accept(
    invoice_id: InvoiceArg,
    payment_method: Annotated[str, typer.Option(help="A gateway token (pm_…)")],
) -> None:
    """Run the plan change again with a new payment method."""
    request = AcceptPaymentMethodRequest(payment_method_id=payment_method)
    _exit(
        invoice_id,
        lambda h: h.execute_update(ManualReviewWorkflow.accept_with_payment_method, request),
    )


@review_app.command("write-off")
def write_off(
    invoice_id: InvoiceArg,
    note: Annotated[str, typer.Option(help="Why the change is dropped")] = "",
) -> None:
    """Close the review without the change."""
    _exit(
        invoice_id,
        lambda h: h.execute_update(ManualReviewWorkflow.write_off, WriteOffRequest(note)),
    )
