"""Endpoints in the API: the URLs it accepts (well formed, resolving only to public
addresses, loopback too outside production, for the demo receiver and tests; the
delivery activity checks again at each delivery, this check spares ops an endpoint
that could never receive anything), and waking their delivery workflows."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable

from temporalio.service import RPCError

from api.temporal_client import TemporalConnection, TemporalUnavailable
from billing.outbound import RefusedUrl, check_addresses, check_url
from dunwell.outbound_start import wake_delivery
from dunwell.settings import Environment, Settings

_log = logging.getLogger(__name__)


async def resolved_addresses(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


async def check_endpoint_url(url: str, settings: Settings) -> None:
    """Raise ``RefusedUrl`` for a URL Dunwell will not deliver to."""
    host, port = check_url(url)
    if settings.env is Environment.PRODUCTION and not url.startswith("https://"):
        raise RefusedUrl("invalid_url", "endpoints must use https in production")
    addresses = await resolved_addresses(host, port)
    check_addresses(addresses, allow_loopback=settings.env is not Environment.PRODUCTION)


async def wake_endpoints(
    connection: TemporalConnection, task_queue: str, endpoint_ids: Iterable[str]
) -> bool:
    """Start or wake the endpoints' delivery workflows; False when Temporal is not
    reachable (the work is in the database: a running workflow finds it at its next
    poll, and the worker starts every endpoint's workflow when it starts)."""
    try:
        client = await connection.get()
        for endpoint_id in endpoint_ids:
            await wake_delivery(client, task_queue, endpoint_id)
    except (TemporalUnavailable, RPCError) as exc:
        _log.warning("delivery workflows not woken: %s", type(exc).__name__)
        return False
    return True
