"""A delivery as Dunwell's sender posts it (``activities.outbound_http``: its body, its
headers, one signature per valid secret) verifies with ``verify_event`` at a receiver,
during a secret rotation's overlap too; a delivery signed with another endpoint's
secret does not."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activities.outbound_http import Sender, event_body
from dunwell.client import Event, InvalidEventError, verify_event


def secret(seed: bytes) -> str:
    return "whsec_" + base64.b64encode(seed.ljust(32, b"-")).decode()


OLD, NEW, OTHER = secret(b"old endpoint secret"), secret(b"new one"), secret(b"elsewhere")


def receiver(endpoint_secret: str, seen: list[Event | InvalidEventError]) -> Starlette:
    async def hook(request: Request) -> JSONResponse:
        try:
            seen.append(verify_event(await request.body(), dict(request.headers), endpoint_secret))
        except InvalidEventError as err:
            seen.append(err)
            return JSONResponse({"ok": False}, status_code=400)
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.mark.parametrize(
    ("signing", "receiving", "verifies"),
    [
        ([NEW], NEW, True),
        ([NEW, OLD], OLD, True),  # the overlap: the receiver still on the old secret
        ([NEW, OLD], NEW, True),
        ([OTHER], NEW, False),
    ],
)
async def test_the_senders_delivery_verifies(
    signing: list[str], receiving: str, verifies: bool
) -> None:
    seen: list[Event | InvalidEventError] = []
    occurred = datetime(2026, 12, 8, 2, 0, tzinfo=UTC)
    body = event_body("evt_9", "access.revoked", occurred, {"subscription_id": "sub_9"})
    transport = httpx.ASGITransport(app=receiver(receiving, seen))
    async with httpx.AsyncClient(transport=transport) as http:
        sent = await Sender(http, allow_loopback=True).post(
            "http://127.0.0.1/hook", signing, "evt_9", body
        )
    assert sent.status_code == (200 if verifies else 400), sent
    (outcome,) = seen
    if verifies:
        assert outcome == Event(
            id="evt_9", type="access.revoked", created=occurred, data={"subscription_id": "sub_9"}
        )
    else:
        assert isinstance(outcome, InvalidEventError) and outcome.code == "invalid_signature"
