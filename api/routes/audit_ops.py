"""Ops API (ops API key): the audit log, read (``stores.audit`` writes it).

Filters by actor (an API key's id), action, target and time (``since`` inclusive,
``until`` exclusive, UTC); pages oldest first with ``after`` / ``next_after`` like the
other ops lists.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import EngineDep, OpsKey
from api.errors import OPS_ERROR_RESPONSES, ApiError
from api.schemas import ROW_ID_MAX, IsoDatetime
from ledger.unit_of_work import read
from stores import audit

router = APIRouter(prefix="/v1/ops", tags=["ops"], responses=OPS_ERROR_RESPONSES)


class AuditEntryOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    outcome: str
    before: Any
    after: Any
    request_id: str | None


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_after: int | None


def audit_entry_out(row: audit.AuditRow) -> AuditEntryOut:
    return AuditEntryOut(**{name: getattr(row, name) for name in AuditEntryOut.model_fields})


@router.get("/audit", response_model=AuditPage)
async def list_audit(
    _auth: OpsKey,
    engine: EngineDep,
    actor: Annotated[str | None, Query(max_length=64, description="An API key's id")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. dunning.end")] = None,
    target: Annotated[str | None, Query(max_length=255, description="e.g. invoice:in_123")] = None,
    since: Annotated[IsoDatetime | None, Query(description="At or after (UTC)")] = None,
    until: Annotated[IsoDatetime | None, Query(description="Before (UTC)")] = None,
    after: Annotated[
        int, Query(ge=0, le=ROW_ID_MAX, description="Continue after this entry's id")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
) -> AuditPage:
    """Who did what to what, oldest first: every ops action and portal-session mint."""
    if since is not None and until is not None and until <= since:
        raise ApiError(422, "invalid_range", "until must be after since")
    rows = await asyncio.to_thread(
        read,
        engine,
        lambda c: audit.list_entries(
            c,
            actor=actor,
            action=action,
            target=target,
            since=since,
            until=until,
            after_id=after,
            limit=limit,
        ),
    )
    items = [audit_entry_out(r) for r in rows]
    return AuditPage(items=items, next_after=items[-1].id if len(items) == limit else None)
