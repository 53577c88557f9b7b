"""Endpoint URLs the API accepts: well formed, and resolving only to public addresses
(loopback too outside production, for the demo receiver and tests). The delivery
activity checks again at each delivery; this check spares ops an endpoint that could
never receive anything."""

from __future__ import annotations

import asyncio
import socket

from billing.outbound import RefusedUrl, check_addresses, check_url
from dunwell.settings import Environment, Settings


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
