"""Ops API for disputes (ops API key): every dispute with its state, the invoice and
subscription whose payment it disputes, and the money it moved. 422: a malformed
filter."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import EngineDep, OpsKey
from api.errors import OPS_ERROR_RESPONSES, ApiError, ErrorResponse
from ledger.disputes.store import DisputeStore, DisputeView

router = APIRouter(
    prefix="/v1/ops",
    tags=["ops"],
    responses={
        **OPS_ERROR_RESPONSES,
        404: {"model": ErrorResponse, "description": "No such dispute"},
    },
)


class DisputeOut(BaseModel):
    dispute_id: str
    charge_id: str
    payment_ref: str
    invoice_id: str
    subscription_id: str | None
    customer_id: str
    amount: int
    currency: str
    reason: str
    status: str
    opened_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    withdrawn: int  # funds withdrawn net of those reinstated (settlement currency)
    fees: int


def dispute_out(view: DisputeView) -> DisputeOut:
    return DisputeOut(**{name: getattr(view, name) for name in DisputeOut.model_fields})


@router.get("/disputes", response_model=list[DisputeOut])
async def list_disputes(
    _auth: OpsKey,
    engine: EngineDep,
    status: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    open_only: Annotated[bool, Query(alias="open")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DisputeOut]:
    """Disputes, oldest first; ``open=true`` for those not closed yet."""
    found = await asyncio.to_thread(
        DisputeStore(engine).list, status=status, open_only=open_only, limit=limit
    )
    return [dispute_out(v) for v in found]


@router.get("/disputes/{dispute_id}", response_model=DisputeOut)
async def get_dispute(_auth: OpsKey, engine: EngineDep, dispute_id: str) -> DisputeOut:
    """One dispute with what it moved."""
    found = await asyncio.to_thread(DisputeStore(engine).get, dispute_id)
    if found is None:
        raise ApiError(404, "dispute_not_found", f"no dispute {dispute_id!r}")
    return dispute_out(found)
