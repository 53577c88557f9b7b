"""Ops API: what finance and operations read (ops API key)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import EngineDep, OpsKey
from api.errors import OPS_ERROR_RESPONSES
from api.schemas import IsoDatetime
from ledger.posting import Ledger

router = APIRouter(prefix="/v1/ops", tags=["ops"], responses=OPS_ERROR_RESPONSES)


class CurrencyTotalsOut(BaseModel):
    currency: str
    debits: int
    credits: int
    net: int


class TrialBalanceOut(BaseModel):
    at: datetime | None
    balanced: bool
    currencies: list[CurrencyTotalsOut]


@router.get("/ledger/trial-balance", response_model=TrialBalanceOut)
async def trial_balance(
    _auth: OpsKey,
    engine: EngineDep,
    at: Annotated[IsoDatetime | None, Query(description="Balances as of (UTC)")] = None,
) -> TrialBalanceOut:
    """Debits, credits and net per currency (minor units); balanced means every net is 0."""
    tb = await asyncio.to_thread(Ledger(engine).trial_balance, at)
    return TrialBalanceOut(
        at=tb.at,
        balanced=tb.balanced,
        currencies=[
            CurrencyTotalsOut(currency=c.currency, debits=c.debits, credits=c.credits, net=c.net)
            for c in tb.currencies
        ],
    )
