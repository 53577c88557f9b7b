"""Posting one signed event to a receiver, with the receiver protections.

The body is the event as JSON (``{"id", "type", "timestamp", "data"}``), signed per
the Standard Webhooks specification with the ``standardwebhooks`` package: the
``webhook-id`` header is the event id (the same on every attempt, so the receiver can
drop duplicates), ``webhook-timestamp`` the attempt's wall-clock second, and
``webhook-signature`` one ``v1,`` signature per secret valid now (two during a
rotation's overlap).

Protections: the receiver's host must resolve to public addresses only (loopback too
outside production; checked again at each attempt, since DNS answers change);
redirects are never followed (a 3xx is a failed attempt); the response body is read
only up to ``max_body`` bytes; the whole exchange is bounded by ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from billing.outbound import RefusedUrl, check_addresses, check_url


@dataclass(frozen=True)
class PostResult:
    attempted_at: datetime
    status_code: int | None
    error: str | None
    body: str
    duration_ms: int


def event_body(event_id: str, event_type: str, occurred_at: datetime, data: Any) -> bytes:
    return json.dumps(
        {"id": event_id, "type": event_type, "timestamp": occurred_at.isoformat(), "data": data},
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def signature(secrets: list[str], event_id: str, at: datetime, body: bytes) -> str:
    """``v1,<base64>`` per secret, space-separated (the specification's form)."""
    return " ".join(Webhook(secret).sign(event_id, at, body) for secret in secrets)


async def _resolved(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


class Sender:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        allow_loopback: bool,
        max_body: int = 4_096,
        timeout: float = 10.0,
    ) -> None:
        self._client = client
        self._allow_loopback = allow_loopback
        self._max_body = max_body
        self._timeout = timeout

    async def post(self, url: str, secrets: list[str], event_id: str, body: bytes) -> PostResult:
        at = datetime.now(UTC).replace(microsecond=0)
        started = time.monotonic()

        def result(status: int | None, error: str | None, text: str = "") -> PostResult:
            elapsed = int((time.monotonic() - started) * 1000)
            return PostResult(at, status, error, text, elapsed)

        try:
            host, port = check_url(url)
            check_addresses(await _resolved(host, port), allow_loopback=self._allow_loopback)
        except RefusedUrl as exc:
            return result(None, f"{exc.code}: {exc}")
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature(secrets, event_id, at, body),
            "user-agent": "Dunwell-Webhooks/1",
        }
        try:
            async with asyncio.timeout(self._timeout):
                request = self._client.build_request("POST", url, content=body, headers=headers)
                response = await self._client.send(request, stream=True, follow_redirects=False)
                try:
                    kept = await self._read_bounded(response)
                finally:
                    await response.aclose()
        except TimeoutError:
            return result(None, f"timeout: no answer within {self._timeout:g}s")
        except httpx.HTTPError as exc:
            return result(None, f"{type(exc).__name__}: {exc}"[:500])
        error = None
        if response.is_redirect:
            error = f"redirect to {response.headers.get('location', '?')[:200]} not followed"
        return result(response.status_code, error, kept.decode("utf-8", "replace"))

    async def _read_bounded(self, response: httpx.Response) -> bytes:
        kept = bytearray()
        async for chunk in response.aiter_raw():
            kept += chunk[: self._max_body - len(kept)]
            if len(kept) >= self._max_body:
                break  # the rest is never read; closing the response drops it
        return bytes(kept)
