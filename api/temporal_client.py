"""The API's lazily connected Temporal client.

The API starts even when Temporal is down; a route that needs it gets a 503 with
Retry-After instead of a half-done action.
"""

from __future__ import annotations

import asyncio

from temporalio.client import Client

from api.errors import ApiError
from dunwell import temporal
from dunwell.settings import Settings

CONNECT_TIMEOUT_SECONDS = 5.0
RETRY_AFTER_SECONDS = 5


class TemporalUnavailable(ApiError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            503,
            "temporal_unavailable",
            f"the workflow engine is not reachable; nothing was changed ({detail})",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class TemporalConnection:
    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self._settings = settings
        self._client = client
        self._lock = asyncio.Lock()

    async def get(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(
                        temporal.connect(self._settings), CONNECT_TIMEOUT_SECONDS
                    )
                except (TimeoutError, RuntimeError, OSError) as err:
                    raise TemporalUnavailable(type(err).__name__) from err
            return self._client

    async def is_reachable(self) -> bool:
        try:
            client = await self.get()
            await asyncio.wait_for(client.service_client.check_health(), 2.0)
        except Exception:
            return False
        return True
