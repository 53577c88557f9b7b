"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, text

from api.deps import EngineDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    database: bool
    temporal: bool


# How long readiness waits for the database before calling it unreachable.
DATABASE_TIMEOUT_SECONDS = 2.0


async def _database_answers(engine: Engine) -> bool:
    """Whether ``SELECT 1`` answers within the timeout, asked off the event loop."""

    def ping() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(asyncio.to_thread(ping), DATABASE_TIMEOUT_SECONDS)
    except Exception:
        return False
    return True


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
    database, temporal = await asyncio.gather(
        _database_answers(engine), request.app.state.temporal.is_reachable()
    )
    body = Readiness(database=database, temporal=temporal)
    return JSONResponse(
        status_code=200 if database and temporal else 503, content=body.model_dump()
    )
