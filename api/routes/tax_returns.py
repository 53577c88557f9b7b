"""Ops API (ops API key): the EU One-Stop-Shop quarterly VAT return (``ledger.oss_return``)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import EngineDep, OpsKey, SettingsDep
from api.errors import OPS_ERROR_RESPONSES, ApiError
from ledger.oss_return import OssReturnError, Quarter, oss_return

router = APIRouter(prefix="/v1/ops/tax", tags=["ops"], responses=OPS_ERROR_RESPONSES)


class OssRowOut(BaseModel):
    member_state: str
    rate_ppm: int
    currency: str
    taxable_amount: int
    vat_amount: int
    documents: int


class OssCorrectionOut(OssRowOut):
    corrects_quarter: str


class OssReturnOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    quarter: str
    from_: str = Field(alias="from")
    to: str
    seller_country: str | None
    rows: list[OssRowOut]
    corrections: list[OssCorrectionOut]


@router.get(
    "/oss",
    response_model=OssReturnOut,
    responses={200: {"content": {"text/csv": {}}}},
)
async def oss_return_report(
    _auth: OpsKey,
    engine: EngineDep,
    settings: SettingsDep,
    quarter: Annotated[str, Query(description="e.g. 2026Q3", pattern=r"^[1-9]\d{3}Q[1-4]$")],
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> OssReturnOut | Response:
    """Per member state and rate, taxable amount and VAT; corrections of earlier quarters apart."""
    try:
        period = Quarter.parse(quarter)
    except OssReturnError as err:
        raise ApiError(422, "invalid_quarter", str(err)) from None
    report = await asyncio.to_thread(
        oss_return, engine, period, seller_country=settings.seller_country
    )
    if output == "csv":
        return Response(
            report.to_csv(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="oss-{period}.csv"'},
        )
    document = report.as_dict()
    return OssReturnOut(
        quarter=document["quarter"],
        from_=document["from"],
        to=document["to"],
        seller_country=report.seller_country,
        rows=[OssRowOut(**row) for row in document["rows"]],
        corrections=[OssCorrectionOut(**c) for c in document["corrections"]],
    )
