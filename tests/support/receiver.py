"""A real receiving server for outbound events: uvicorn on a loopback port, in a thread.

It verifies every delivery's Standard Webhooks signature against the secrets it is
told (answering 400 to one that does not verify) and keeps what it accepted, in
arrival order. ``mode`` makes it misbehave: ``slow`` answers after ``delay`` seconds,
``huge`` answers 200 with a body of ``huge_bytes``, ``redirect`` answers 307 to
``/elsewhere`` (which would accept anything). ``stop`` takes it down (connections are
refused) and ``start`` brings it back on the same port.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.localstripe import free_port


@dataclass(frozen=True)
class Received:
    event_id: str
    type: str
    subscription_id: str | None
    payload: dict[str, Any]
    at: float  # wall clock


@dataclass
class Receiver:
    secrets: list[str]
    port: int = field(default_factory=free_port)
    mode: str = "ok"
    delay: float = 3.0
    huge_bytes: int = 8 * 1024 * 1024
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    elsewhere: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def _verified(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        for secret in self.secrets:
            try:
                payload: dict[str, Any] = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return payload
        return None

    async def hooks(self, request: Request) -> Response:
        body = await request.body()
        payload = self._verified(body, dict(request.headers))
        if payload is None:
            self.refused += 1
            return PlainTextResponse("bad signature", status_code=400)
        if self.mode == "slow":
            await asyncio.sleep(self.delay)
        if self.mode == "redirect":
            return RedirectResponse("/elsewhere", status_code=307)
        obj = payload.get("data", {}).get("object", {})
        self.received.append(
            Received(
                event_id=request.headers["webhook-id"],
                type=payload["type"],
                subscription_id=obj.get("subscription_id") or obj.get("id"),
                payload=payload,
                at=time.time(),
            )
        )
        if self.mode == "huge":
            chunk = b"x" * 65_536

            async def flood() -> Any:
                for _ in range(self.huge_bytes // len(chunk)):
                    yield chunk

            return StreamingResponse(flood(), status_code=200)
        return PlainTextResponse(json.dumps({"ok": True}))

    async def elsewhere_hook(self, request: Request) -> Response:
        self.elsewhere += 1
        return PlainTextResponse("ok")

    def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/hooks", self.hooks, methods=["POST"]),
                Route("/elsewhere", self.elsewhere_hook, methods=["POST"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def unique_ids(self) -> list[str]:
        """Event ids in order of first arrival (dedupe by id, as a receiver would)."""
        return list(dict.fromkeys(r.event_id for r in self.received))
