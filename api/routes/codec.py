"""The remote codec the Temporal UI calls to show encrypted payloads to ops.

Temporal's UI posts ``{"payloads": [...]}`` (the JSON form of ``temporal.api.common.v1
.Payloads``) to ``<endpoint>/decode`` and shows what comes back; ``/encode`` serves the
UI's own inputs (a signal sent from it). The UI runs on another origin, so these routes
answer CORS preflights for the origins configured in ``DUNWELL_CODEC_CORS_ORIGINS``
(dev adds its own UI). Outside dev they need an ops API key (the UI is ops's tool; a
server key is refused with 403): a decoded payload is customer data. With no payload
keys configured there is nothing to decode: 404.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from api.deps import identify
from api.errors import ApiError
from dunwell.api_keys import Role
from dunwell.codec import EncryptionCodec, PayloadDecryptionError
from dunwell.settings import Environment, Settings

router = APIRouter(prefix="/codec", include_in_schema=False)

# Bodies are a page of history's payloads; the UI sends one event's at a time.
MAX_CODEC_BODY_BYTES = 4 * 1024 * 1024
_ALLOWED_HEADERS = "content-type, x-namespace, authorization"


def _origin_allowed(settings: Settings, origin: str | None) -> bool:
    if origin is None:
        return False
    allowed = set(settings.codec_cors_origins)
    if settings.env is Environment.DEV:
        port = settings.temporal_ui_port
        allowed |= {f"http://127.0.0.1:{port}", f"http://localhost:{port}"}
    return origin in allowed


def _cors_headers(request: Request) -> dict[str, str]:
    settings: Settings = request.app.state.settings
    origin = request.headers.get("origin")
    if not _origin_allowed(settings, origin):
        return {}
    assert origin is not None
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": _ALLOWED_HEADERS,
        "Access-Control-Allow-Credentials": "true",
        "Vary": "Origin",
    }


def _authorize(request: Request) -> None:
    settings: Settings = request.app.state.settings
    if settings.env is Environment.DEV:
        return  # the dev stack listens on loopback; its UI sends no credentials
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    principal = identify(settings, token) if scheme.lower() == "bearer" else None
    if principal is None:
        raise ApiError(
            401,
            "invalid_api_key",
            "a valid API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if principal.role is not Role.OPS:
        raise ApiError(403, "ops_key_required", "decoding payloads needs an ops API key")


@router.options("/{action}")
async def preflight(action: Literal["encode", "decode"], request: Request) -> Response:
    return Response(status_code=204, headers=_cors_headers(request))


@router.post("/{action}")
async def transcode(action: Literal["encode", "decode"], request: Request) -> Response:
    cors = _cors_headers(request)
    try:
        _authorize(request)
        codec: EncryptionCodec | None = request.app.state.codec
        if codec is None:
            raise ApiError(404, "codec_off", "payload encryption is not configured")
        body = await request.body()
        if len(body) > MAX_CODEC_BODY_BYTES:
            raise ApiError(413, "body_too_large", "at most 4 MiB of payloads per request")
        try:
            payloads = json_format.Parse(body, Payloads(), ignore_unknown_fields=True)
        except (json_format.ParseError, DecodeError, UnicodeDecodeError):
            raise ApiError(
                400, "invalid_payloads", 'the body is not {"payloads": [...]} JSON'
            ) from None
        try:
            done = (
                await codec.decode(payloads.payloads)
                if action == "decode"
                else await codec.encode(payloads.payloads)
            )
        except PayloadDecryptionError as err:
            raise ApiError(422, "payload_undecodable", str(err)) from None
    except ApiError as err:
        err.headers = {**(err.headers or {}), **cors}
        raise
    return Response(
        json_format.MessageToJson(Payloads(payloads=done)),
        media_type="application/json",
        headers=cors,
    )
