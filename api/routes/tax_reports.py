"""Ops API: tax liability per jurisdiction and period (ops API key)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import EngineDep, OpsKey
from api.errors import OPS_ERROR_RESPONSES, ApiError
from ledger.tax_report import TaxReportError, parse_bound, tax_liability

router = APIRouter(prefix="/v1/ops/tax", tags=["ops"], responses=OPS_ERROR_RESPONSES)


class LiabilityRowOut(BaseModel):
    jurisdiction: str
    tax_type: str
    currency: str
    rate_ppm: int
    reason: str
    taxable_amount: int
    tax_amount: int
    documents: int


class LiabilityReportOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    rows: list[LiabilityRowOut]


# A date, or a datetime with its offset: what ``parse_bound`` reads.
ISO_BOUND = r"^[1-9]\d{3}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2}))?$"


@router.get(
    "/liability",
    response_model=LiabilityReportOut,
    responses={200: {"content": {"text/csv": {}}}},
)
async def tax_liability_report(
    _auth: OpsKey,
    engine: EngineDep,
    start: Annotated[
        str, Query(alias="from", description="ISO date or aware datetime", pattern=ISO_BOUND)
    ],
    end: Annotated[
        str,
        Query(
            alias="to", description="Exclusive end, ISO date or aware datetime", pattern=ISO_BOUND
        ),
    ],
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> LiabilityReportOut | Response:
    """Tax per jurisdiction, type, currency and rate for documents issued in [from, to)."""
    try:
        period = (parse_bound(start, "from"), parse_bound(end, "to"))
        report = await asyncio.to_thread(tax_liability, engine, start=period[0], end=period[1])
    except TaxReportError as err:
        raise ApiError(422, "invalid_period", str(err)) from None
    if output == "csv":
        name = f"tax-liability-{period[0].date()}-{period[1].date()}.csv"
        return Response(
            report.to_csv(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return LiabilityReportOut(
        from_=report.start.isoformat(),
        to=report.end.isoformat(),
        rows=[LiabilityRowOut(**row) for row in report.as_dict()["rows"]],
    )
