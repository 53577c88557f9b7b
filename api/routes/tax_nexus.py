"""Ops API (ops API key): where the seller stands against each economic-nexus threshold
(running totals from the compliance ledger), and the alerts the daily watch raised."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import EngineDep, OpsKey
from api.errors import OPS_ERROR_RESPONSES
from api.schemas import IsoDate
from ledger.compliance import ComplianceLedger
from ledger.nexus_watch import NexusPosition, nexus_alerts, nexus_positions
from tax.nexus import load_thresholds

router = APIRouter(prefix="/v1/ops/tax", tags=["ops"], responses=OPS_ERROR_RESPONSES)


class NexusPositionOut(BaseModel):
    jurisdiction: str
    registered: bool
    currency: str
    sales: int
    sales_threshold: int
    transactions: int
    transactions_threshold: int | None
    combine: str
    percent: int
    measurement_period: str
    window_start: datetime
    window_end: datetime
    source_url: str


class NexusPositionsOut(BaseModel):
    day: date
    items: list[NexusPositionOut]


class NexusAlertOut(BaseModel):
    jurisdiction: str
    level: int
    threshold_from: date
    currency: str
    sales: int
    transactions: int
    percent: int
    window_start: datetime
    window_end: datetime
    raised_at: datetime


class NexusAlertsOut(BaseModel):
    items: list[NexusAlertOut]


def position_out(p: NexusPosition) -> NexusPositionOut:
    t = p.threshold
    return NexusPositionOut(
        jurisdiction=t.jurisdiction,
        registered=p.registered,
        currency=t.currency,
        sales=p.sales,
        sales_threshold=t.sales_minor,
        transactions=p.transactions,
        transactions_threshold=t.transactions,
        combine=t.combine,
        percent=p.percent,
        measurement_period=t.period,
        window_start=p.window_start,
        window_end=p.window_end,
        source_url=t.source_url,
    )


@router.get("/nexus-positions", response_model=NexusPositionsOut)
async def list_nexus_positions(
    _auth: OpsKey,
    engine: EngineDep,
    day: Annotated[IsoDate | None, Query(description="Default: today (UTC)")] = None,
) -> NexusPositionsOut:
    """Per threshold in force: running sales and transactions, percent, registered or not."""
    on = day or datetime.now(UTC).date()

    def work() -> list[NexusPosition]:
        registrations = ComplianceLedger(engine).registrations()
        return nexus_positions(engine, load_thresholds(), registrations, on)

    positions = await asyncio.to_thread(work)
    return NexusPositionsOut(day=on, items=[position_out(p) for p in positions])


@router.get("/nexus-alerts", response_model=NexusAlertsOut)
async def list_nexus_alerts(_auth: OpsKey, engine: EngineDep) -> NexusAlertsOut:
    """Every alert the nexus watch raised (at 80 % and 100 %, once per threshold)."""
    alerts = await asyncio.to_thread(nexus_alerts, engine)
    return NexusAlertsOut(
        items=[
            NexusAlertOut(
                jurisdiction=a.jurisdiction,
                level=a.level,
                threshold_from=a.threshold_from,
                currency=a.currency,
                sales=a.sales,
                transactions=a.transactions,
                percent=a.percent,
                window_start=a.window_start,
                window_end=a.window_end,
                raised_at=a.raised_at,
            )
            for a in alerts
        ]
    )
