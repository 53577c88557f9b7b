"""Request-body guard: a body that carries card data is refused before any route sees it.

Pure ASGI, so it can read the whole body, inspect it, and replay it unchanged to the
app. It refuses with 400 ``card_data_refused`` when the body holds a Luhn-valid 13-19
digit run (also after URL-decoding and after JSON string unescaping) or a field named
like a card number or security code (JSON keys, form field names, multipart part
names); see ``billing.pan``. The body is never logged, only the path and which kind of
card data was found.

It runs on every route, the signed webhook intakes included: a genuine gateway event
never carries a PAN, so the raw bodies the intakes store for audit have passed it too.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from billing.pan import find_pan_like, suspicious_field_names

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

_MULTIPART_NAME = re.compile(rb'name="([^"]{1,200})"')
_BRACKETS = re.compile(r"\[([^\]]*)\]")


def card_data_in(body: bytes, content_type: str) -> str | None:
    """What kind of card data the body carries (``card_number``/``card_field``), or None."""
    text = body.decode("utf-8", errors="replace")
    if find_pan_like(text):
        return "card_number"
    parsed = _parse_json(text)
    if parsed is not None:
        if suspicious_field_names(parsed):
            return "card_field"
        # Unescaped strings: \uXXXX escapes can spell digits or separators the raw scan
        # cannot see. No other JSON escape yields either, so without one the raw scan
        # has seen it all.
        if "\\u" in text and find_pan_like(json.dumps(parsed, ensure_ascii=False)):
            return "card_number"
        return None
    # Not JSON: whatever the declared type, read it as a form too (digit groups joined by "+").
    if find_pan_like(unquote_plus(text)):
        return "card_number"
    if "multipart/form-data" in content_type:
        names = [m.decode("utf-8", errors="replace") for m in _MULTIPART_NAME.findall(body)]
        if suspicious_field_names(_nest((name, "") for name in names)):
            return "card_field"
    elif suspicious_field_names(_nest(parse_qsl(text, keep_blank_values=True))):
        return "card_field"
    return None


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _nest(pairs: Any) -> dict[str, Any]:
    """Form keys as nested objects: ``card[number]=...`` becomes ``{"card": {"number": ...}}``."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = [key.split("[", 1)[0], *_BRACKETS.findall(key)]
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


class PanGuard:
    """ASGI middleware: ``app.add_middleware(PanGuard)``."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                response = error_response(
                    413,
                    "body_too_large",
                    f"request bodies are limited to {self.max_body_bytes} bytes",
                )
                await response(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            found = card_data_in(body, _header(scope, b"content-type"))
            if found is not None:
                log.warning("refused a request to %s: body carries %s", scope.get("path"), found)
                response = error_response(
                    400,
                    "card_data_refused",
                    "card numbers and security codes are never accepted; "
                    "use the payment form, which sends them to the gateway directly",
                )
                await response(scope, receive, send)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return ""
