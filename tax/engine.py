"""The one tax engine interface Dunwell's activities call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from tax.model import Registration, TaxableLine, TaxCustomer, TaxQuote


class TaxEngine(Protocol):
    name: str

    def quote(
        self,
        lines: Sequence[TaxableLine],
        customer: TaxCustomer,
        registrations: Sequence[Registration],
        at: datetime,
    ) -> TaxQuote: ...


async def aquote(
    engine: TaxEngine,
    lines: Sequence[TaxableLine],
    customer: TaxCustomer,
    registrations: Sequence[Registration],
    at: datetime,
) -> TaxQuote:
    """``engine.quote`` off the event loop: the Stripe engine makes a blocking SDK call."""
    return await asyncio.to_thread(engine.quote, lines, customer, registrations, at)
