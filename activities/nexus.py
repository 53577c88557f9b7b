"""The nexus watch's activity: positions against the economic-nexus thresholds from the
compliance ledger, and the alerts due (``ledger.nexus_watch``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from temporalio import activity

from ledger.nexus_watch import watch
from tax.nexus import Threshold

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NexusWatchRequest:
    at: datetime


@dataclass(frozen=True)
class NexusWatchResult:
    watched: int  # thresholds in force
    alerts: list[str]  # "US-CO 80%" for each alert raised now


class NexusActivities:
    def __init__(self, engine: Engine, thresholds: Sequence[Threshold]) -> None:
        self._engine = engine
        self._thresholds = list(thresholds)

    @activity.defn(name="tax.nexus_watch")
    async def nexus_watch(self, request: NexusWatchRequest) -> NexusWatchResult:
        positions, raised = await asyncio.to_thread(
            watch, self._engine, self._thresholds, at=request.at
        )
        for alert in raised:
            log.warning(
                "economic nexus: %s at %d%% of its threshold (%d%% reached), not registered",
                alert.jurisdiction,
                alert.level,
                alert.percent,
            )
        return NexusWatchResult(len(positions), [f"{a.jurisdiction} {a.level}%" for a in raised])

    def all(self) -> list[Any]:
        return [self.nexus_watch]
