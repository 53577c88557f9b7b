"""The demo receiver ``dunwell dev`` starts: the SaaS product's side of outbound events.

It verifies each delivery's Standard Webhooks signature with the secrets in its secret
file (one a line, read again on every request, so a rotation needs no restart), drops
an event id it has seen (deliveries are at least once), and logs one line per event:
what a SaaS backend would act on. A delivery that does not verify gets a 400 and a
``refused`` line.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

SEEN_LIMIT = 10_000
PATH = "/events"


def summary(payload: dict[str, Any]) -> str:
    obj = payload.get("data", {}).get("object", {})
    parts = [f"{k}={obj[k]}" for k in ("id", "status", "plan_id", "total", "currency") if k in obj]
    if "has_access" in obj:
        parts.append(f"access={'yes' if obj['has_access'] else 'no'}")
    return " ".join(str(p) for p in parts)


class DemoReceiver:
    def __init__(self, secret_file: Path, out: Callable[[str], None] = print) -> None:
        self.secret_file = secret_file
        self.out = out
        self.seen: OrderedDict[str, None] = OrderedDict()

    def _secrets(self) -> list[str]:
        try:
            text = self.secret_file.read_text()
        except FileNotFoundError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        for secret in self._secrets():
            try:
                payload: dict[str, Any] = Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            return payload
        return None

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        payload = self.verify(body, dict(request.headers))
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if payload is None:
            self.out(f"{now} refused: the signature does not verify")
            return PlainTextResponse("bad signature", status_code=400)
        event_id = request.headers.get("webhook-id", "")
        if event_id in self.seen:
            self.out(f"{now} duplicate {event_id} dropped")
            return PlainTextResponse("ok")
        self.seen[event_id] = None
        while len(self.seen) > SEEN_LIMIT:
            self.seen.popitem(last=False)
        self.out(f"{now} verified {payload.get('type')} {event_id} {summary(payload)}")
        return PlainTextResponse(json.dumps({"received": event_id}))


def create_app(secret_file: Path, out: Callable[[str], None] = print) -> Starlette:
    receiver = DemoReceiver(secret_file, out)
    return Starlette(routes=[Route(PATH, receiver.receive, methods=["POST"])])
