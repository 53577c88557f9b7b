"""Customer-scoped gateway events, fanned out to each subscription of the customer.

A ``payment_method.*`` or ``customer.*`` event names a gateway customer, not a
subscription (the card account updater's ``payment_method.automatically_updated`` has
no subscription metadata). Rather than park it, the intake looks the customer up in the
directory and delivers one copy per subscription (``billing.events.stripe_event_for``),
each recorded and de-duplicated under its own id, so every subscription of the customer
sees the event exactly once. A customer the directory does not know, or one with no
subscription, leaves the event parked as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from billing.events import GatewayEvent, gateway_customer_of, stripe_event_for
from stores.customers import subscriptions_of_gateway_customer


async def fan_out(engine: Engine, raw: Mapping[str, Any]) -> list[GatewayEvent]:
    """One copy of the event per subscription of the gateway customer it names; empty
    when it names none, or the customer has no subscription."""
    customer = gateway_customer_of(raw)
    if customer is None:
        return []

    def lookup() -> list[str]:
        with engine.connect() as conn:
            return [s.id for s in subscriptions_of_gateway_customer(conn, customer)]

    copies = [
        stripe_event_for(raw, subscription_id)
        for subscription_id in await asyncio.to_thread(lookup)
    ]
    return [copy for copy in copies if isinstance(copy, GatewayEvent)]
