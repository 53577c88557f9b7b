"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import EngineDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    database: bool
    temporal: bool


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "A dependency is not reachable"}},
)
async def readyz(request: Request, engine: EngineDep) -> JSONResponse:
    """Whether the database and Temporal answer."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = True
    except Exception:
        database = False
    temporal = await request.app.state.temporal.is_reachable()
    body = Readiness(database=database, temporal=temporal)
    return JSONResponse(
        status_code=200 if database and temporal else 503, content=body.model_dump()
    )
