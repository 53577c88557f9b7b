"""Ops API for reconciliation (ops API key): the exceptions queue, payout runs and their
reports, and starting a payout's run.

Exceptions move open → acknowledged → resolved (naming the adjusting entry), written
off or ignored; every step records who took it. 404: no such exception or payout run;
409: the exception's status does not allow the action; 422: a malformed action
(nothing changed); 503: Temporal is not reachable (nothing started).
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from api.audit import OpsAudit
from api.deps import EngineDep, OpsKey, SettingsDep
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from api.schemas import ROW_ID_MAX
from api.services.payout_events import start_or_signal
from billing.reconciliation.model import ExceptionClass
from ledger.reconciliation import runs
from ledger.reconciliation.errors import (
    ExceptionNotFound,
    ExceptionStateError,
    InvalidExceptionAction,
)
from ledger.reconciliation.exceptions import (
    ExceptionAction,
    ExceptionStatus,
    ExceptionStore,
    ExceptionView,
)
from ledger.unit_of_work import read
from workflows.reconcile_payout import PayoutEvent, workflow_id

router = APIRouter(
    prefix="/v1/ops/recon",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such exception or payout run"},
        409: {"model": ErrorResponse, "description": "Refused in the exception's status"},
    },
)


class ActionOut(BaseModel):
    action: str
    from_status: str | None
    to_status: str
    actor: str
    at: datetime
    note: str | None


class ExceptionOut(BaseModel):
    id: int
    key: str
    exception_class: str
    status: str
    payout_id: str | None
    gateway_ref: str | None
    currency: str | None
    amount: int | None
    evidence: dict[str, Any]
    opened_at: datetime
    opened_by: str
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    note: str | None
    adjusting_entry_id: int | None
    actions: list[ActionOut]


class ExceptionActionIn(BaseModel):
    action: ExceptionAction
    actor: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, min_length=1, max_length=2000)
    adjusting_entry_id: int | None = Field(default=None, gt=0)


class RunOut(BaseModel):
    payout_id: str
    currency: str
    amount: int
    payout_status: str
    arrival_date: datetime
    status: str
    started_at: datetime
    completed_at: datetime | None
    report: dict[str, Any] | None


class RunStarted(BaseModel):
    payout_id: str
    workflow_id: str


def exception_out(x: ExceptionView) -> ExceptionOut:
    return ExceptionOut(
        id=x.id,
        key=x.key,
        exception_class=x.cls.value,
        status=x.status.value,
        payout_id=x.payout_id,
        gateway_ref=x.gateway_ref,
        currency=x.currency,
        amount=x.amount,
        evidence=x.evidence,
        opened_at=x.opened_at,
        opened_by=x.opened_by,
        acknowledged_at=x.acknowledged_at,
        acknowledged_by=x.acknowledged_by,
        closed_at=x.closed_at,
        closed_by=x.closed_by,
        note=x.note,
        adjusting_entry_id=x.adjusting_entry_id,
        actions=[_action(a) for a in x.actions],
    )


def _action(a: Any) -> ActionOut:
    return ActionOut(
        action=a.action,
        from_status=a.from_status,
        to_status=a.to_status,
        actor=a.actor,
        at=a.at,
        note=a.note,
    )


@router.get("/exceptions", response_model=list[ExceptionOut])
async def list_exceptions(
    _auth: OpsKey,
    engine: EngineDep,
    status: ExceptionStatus | None = None,
    exception_class: Annotated[ExceptionClass | None, Query(alias="class")] = None,
    payout_id: Annotated[str | None, Query(max_length=255)] = None,
    after_id: Annotated[int, Query(ge=0, le=ROW_ID_MAX)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ExceptionOut]:
    """Reconciliation exceptions, oldest first, filtered by status, class or payout."""
    store = ExceptionStore(engine)
    found = await asyncio.to_thread(
        store.list,
        status=status,
        cls=exception_class,
        payout_id=payout_id,
        after_id=after_id,
        limit=limit,
    )
    return [exception_out(x) for x in found]


@router.get("/exceptions/{exception_id}", response_model=ExceptionOut)
async def get_exception(
    _auth: OpsKey, engine: EngineDep, exception_id: Annotated[int, Path(ge=1, le=ROW_ID_MAX)]
) -> ExceptionOut:
    """One exception with its evidence and everything done to it."""
    try:
        found = await asyncio.to_thread(ExceptionStore(engine).get, exception_id)
    except ExceptionNotFound as err:
        raise ApiError(404, "exception_not_found", str(err)) from None
    return exception_out(found)


@router.post("/exceptions/{exception_id}/actions", response_model=ExceptionOut)
async def act_on_exception(
    audit: OpsAudit,
    engine: EngineDep,
    exception_id: Annotated[int, Path(ge=1, le=ROW_ID_MAX)],
    body: ExceptionActionIn,
) -> ExceptionOut:
    """Acknowledge, resolve (with the adjusting entry's id), write off or ignore."""
    store = ExceptionStore(engine)

    def audited(conn: Connection, before: ExceptionView, after: ExceptionView) -> None:
        audit.record(
            conn,
            f"recon.exception.{body.action}",
            f"recon_exception:{exception_id}",
            before=exception_out(before).model_dump(mode="json"),
            after=exception_out(after).model_dump(mode="json"),
        )

    try:
        done = await asyncio.to_thread(
            store.act,
            exception_id,
            body.action,
            actor=body.actor,
            at=datetime.now(UTC),
            note=body.note,
            adjusting_entry_id=body.adjusting_entry_id,
            also=audited,
        )
    except ExceptionNotFound as err:
        raise ApiError(404, "exception_not_found", str(err)) from None
    except ExceptionStateError as err:
        raise ApiError(409, "exception_state", str(err)) from None
    except InvalidExceptionAction as err:
        raise ApiError(422, "invalid_action", str(err)) from None
    return exception_out(done)


@router.get("/payouts", response_model=list[RunOut])
async def list_runs(
    _auth: OpsKey, engine: EngineDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[RunOut]:
    """Payout runs, latest arrival first."""
    rows = await asyncio.to_thread(read, engine, lambda c: runs.list_runs(c, limit=limit))
    return [RunOut(**row) for row in rows]


@router.get(
    "/payouts/{payout_id}/report",
    response_model=dict[str, Any],
    responses={200: {"content": {"text/csv": {}}}},
)
async def payout_report(
    _auth: OpsKey,
    engine: EngineDep,
    payout_id: str,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> dict[str, Any] | Response:
    """A reconciled payout's report: gross, fees, refunds, disputes, net, matched count,
    exceptions."""
    row = await asyncio.to_thread(read, engine, lambda c: runs.run_row(c, payout_id))
    if row is None or row["report"] is None:
        raise ApiError(404, "run_not_found", f"no finished reconciliation run for {payout_id}")
    body: dict[str, Any] = dict(row["report"])
    if output == "csv":
        return Response(
            report_csv(body),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="payout-{payout_id}.csv"'},
        )
    return body


def report_csv(body: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(runs.REPORT_CSV_FIELDS)
    writer.writerow([body.get(name) for name in runs.REPORT_CSV_FIELDS])
    return out.getvalue()


PAYOUT_ID = r"^po_[A-Za-z0-9_]{1,197}$"


@router.post("/payouts/{payout_id}/run", response_model=RunStarted, status_code=202)
async def run_payout(
    audit: OpsAudit,
    request: Request,
    settings: SettingsDep,
    payout_id: Annotated[str, Path(pattern=PAYOUT_ID)],
) -> RunStarted:
    """Reconcile the payout now (joins a run already going)."""
    if not payout_id.startswith("po_") or len(payout_id) > 200:
        raise ApiError(422, "invalid_payout_id", "a payout id starts with po_")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")

    async def start() -> RunStarted:
        await start_or_signal(
            request.app.state.temporal,
            settings.task_queue,
            payout_id,
            PayoutEvent(f"ops-{stamp}", "ops.run"),
        )
        return RunStarted(payout_id=payout_id, workflow_id=workflow_id(payout_id))

    return await audit.outcome(
        "recon.payout.run",
        f"payout:{payout_id}",
        start(),
        after=lambda started: started.model_dump(mode="json"),
    )
