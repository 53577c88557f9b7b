"""Card-data guard: a request that carries card data is refused before any route sees it.

Pure ASGI, so it can read the whole body, inspect it, and replay it unchanged to the
app. It refuses with 400 ``card_data_refused`` when the path, the query string or the
body holds a Luhn-valid 13-19 digit run or a field named like a card number or security
code (JSON keys, form field names, multipart part names); see ``billing.pan``. The body
is never logged, only the path and which kind of card data was found.

The body is read as its declared charset or byte-order mark says. A JSON body (declared
JSON, or undeclared, which FastAPI parses as JSON) must be UTF-8: anything else is
refused with 415 ``unsupported_charset``, because the JSON parser would otherwise read
UTF-16 that this guard could not. JSON nested deeper than ``billing.pan.MAX_JSON_DEPTH``
is refused with 400 ``body_too_deep``. The work per request is bounded: scans share one
``ScanBudget``, and a request that exhausts it is refused with 400
``card_data_unverifiable`` rather than inspected for seconds.

It runs on every route, the signed webhook intakes included: a genuine gateway event
never carries a PAN, so the raw bodies the intakes store for audit have passed it too.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from typing import Any
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from billing.pan import (
    MIN_PAN_DIGITS,
    JsonTooDeep,
    ScanBudget,
    ScanBudgetExceeded,
    card_data_in_value,
    find_pan_like,
    redact,
    suspicious_field_names,
)

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

# Field names read from a form or multipart body, and how much of each.
MAX_FORM_FIELDS = 1000
MAX_FIELD_NAME = 1000
_DIGIT_AND_SEPARATOR_ESCAPES = tuple(
    (f"%{ord(char):02{case}}", char) for char in "0123456789 \t-./" for case in ("X", "x")
)

# A run of digits, separators and their escapes long enough to spell a card number.
# A run that may spell a card number once decoded: digits, separators, "+" and percent
# escapes (whose hex digits include A-F). One character class, so matching stays linear
# and fast; the decoded runs are scanned properly afterwards.
_ENCODED_CHAIN = re.compile(r"[0-9%][0-9A-Fa-f \t./+%-]" + f"{{{MIN_PAN_DIGITS - 1},}}")

_MULTIPART_NAME = re.compile(rb'name="([^"]{1,200})"')
_BRACKETS = re.compile(r"\[([^\]]*)\]")
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9._:-]+)", re.IGNORECASE)
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_REFUSED_MESSAGE = (
    "card numbers and security codes are never accepted; "
    "use the payment form, which sends them to the gateway directly"
)


class Refusal(Exception):
    """Why the guard refuses a request: an HTTP status, a machine code, a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def card_data_in(body: bytes, content_type: str, budget: ScanBudget | None = None) -> str | None:
    """What kind of card data the body carries (``card_number``/``card_field``), or None.

    Raises ``Refusal`` for a body the guard cannot read safely (charset, nesting, budget).
    """
    budget = budget if budget is not None else ScanBudget()
    try:
        return _inspect(body, content_type.lower(), budget)
    except JsonTooDeep:
        raise Refusal(400, "body_too_deep", "JSON bodies may nest at most 64 levels") from None
    except ScanBudgetExceeded:
        raise _unverifiable() from None


def card_data_in_target(path: str, query_string: bytes, budget: ScanBudget) -> str | None:
    """What card data the path or query string carries, or None. Raises ``Refusal``."""
    try:
        query = query_string.decode("latin-1")
        if find_pan_like(path, budget) or find_pan_like(
            _percent_decoded_digits(query, budget), budget
        ):
            return "card_number"
        if query and suspicious_field_names(_nest((key, "") for key in _form_keys(query))):
            return "card_field"
    except ScanBudgetExceeded:
        raise _unverifiable() from None
    return None


def _unverifiable() -> Refusal:
    return Refusal(
        400,
        "card_data_unverifiable",
        "the request holds more digit groups than can be checked for card numbers",
    )


def _inspect(body: bytes, content_type: str, budget: ScanBudget) -> str | None:
    json_like = not content_type or "json" in content_type.split(";", 1)[0]
    encoding = _encoding(body, content_type)
    if json_like:
        if encoding not in ("utf-8", "utf-8-sig", "utf8"):
            raise Refusal(415, "unsupported_charset", "JSON bodies must be encoded as UTF-8")
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError:
            raise Refusal(
                415, "unsupported_charset", "JSON bodies must be encoded as UTF-8"
            ) from None
        parsed = _parse_json(text)
        if parsed is not _NOT_JSON:
            return card_data_in_value(parsed, budget)
    else:
        try:
            text = body.decode(encoding, errors="replace")
        except LookupError:
            raise Refusal(
                415, "unsupported_charset", f"the charset {encoding!r} is not supported"
            ) from None
    # Not JSON: read it as text, then as a form too (digit groups joined by "+").
    if find_pan_like(text, budget):
        return "card_number"
    if ("%" in text or "+" in text) and find_pan_like(
        _percent_decoded_digits(text, budget), budget
    ):
        return "card_number"
    if "multipart/form-data" in content_type:
        names = [m.decode("utf-8", errors="replace") for m in _MULTIPART_NAME.findall(body)]
        if len(names) > MAX_FORM_FIELDS:
            raise ScanBudgetExceeded
        if suspicious_field_names(_nest((name, "") for name in names)):
            return "card_field"
    elif suspicious_field_names(_nest((key, "") for key in _form_keys(text))):
        return "card_field"
    return None


def _percent_decoded_digits(text: str, budget: ScanBudget) -> str:
    """The digit chains of a form-encoded text, with "+" and percent escapes decoded.

    Only digits and separators can make or join a card number: the chains that could
    hold one are found in the encoded text by one regular expression, and only they are
    decoded, by ``str.replace``, in linear time. A full ``unquote_plus`` of a hostile
    megabyte takes far longer.
    """
    chains = _ENCODED_CHAIN.findall(text)
    if not chains:
        return ""
    decoded = "\n".join(chains)
    # Decoding passes over the runs once per escape: pay for it before doing it.
    budget.spend(len(decoded) // 4)
    decoded = decoded.replace("+", " ")
    if "%" in decoded:
        for escape, char in _DIGIT_AND_SEPARATOR_ESCAPES:
            if escape in decoded:
                decoded = decoded.replace(escape, char)
    return decoded


def _form_keys(text: str) -> list[str]:
    """The decoded field names of a form body, at most ``MAX_FORM_FIELDS`` of them."""
    if text.count("&") >= MAX_FORM_FIELDS:
        raise ScanBudgetExceeded
    fields = text.split("&")
    return [unquote_plus(field.split("=", 1)[0][:MAX_FIELD_NAME]) for field in fields if field]


def _encoding(body: bytes, content_type: str) -> str:
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name
    declared = _CHARSET.search(content_type)
    return declared.group(1).lower() if declared else "utf-8"


_NOT_JSON = object()


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise JsonTooDeep from None
    except ValueError:
        return _NOT_JSON


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
        budget = ScanBudget()
        try:
            found = card_data_in_target(
                scope.get("path", ""), scope.get("query_string", b""), budget
            )
            if found is None and body:
                found = card_data_in(body, _header(scope, b"content-type"), budget)
        except Refusal as refusal:
            log.warning("refused a request to %s: %s", redact(scope.get("path", "")), refusal.code)
            response = error_response(refusal.status, refusal.code, refusal.message)
            await response(scope, receive, send)
            return
        if found is not None:
            log.warning(
                "refused a request to %s: it carries %s", redact(scope.get("path", "")), found
            )
            response = error_response(400, "card_data_refused", _REFUSED_MESSAGE)
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
