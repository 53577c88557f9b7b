"""The remote codec endpoint the Temporal UI decodes payloads through."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from dunwell.codec import ENCODING, EncryptionCodec, PayloadKeys
from dunwell.settings import Environment
from tests.api.conftest import API_KEY, OPS_KEY, build_app, make_settings, running

KEY = PayloadKeys.generate("ui1")
OTHER = PayloadKeys.generate("gone")
UI = "http://127.0.0.1:8233"
PERSONAL = "Ada Lovelace"


def _body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=list(payloads)))


def _payloads(response: httpx.Response) -> list[Payload]:
    return list(json_format.Parse(response.text, Payloads()).payloads)


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


@asynccontextmanager
async def api(
    api_db_url: str, localstripe_url: str, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(api_db_url, localstripe_url, **overrides)
    async with running(build_app(settings)) as http:
        yield http


async def test_the_ui_decodes_what_the_worker_sealed(api_db_url: str, localstripe_url: str) -> None:
    (sealed,) = await EncryptionCodec(PayloadKeys.parse(KEY)).encode([_plain(PERSONAL)])
    async with api(api_db_url, localstripe_url, env=Environment.DEV, payload_keys=KEY) as http:
        preflight = await http.options(
            "/codec/decode",
            headers={"Origin": UI, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == UI
        assert "x-namespace" in preflight.headers["access-control-allow-headers"]
        decoded = await http.post(
            "/codec/decode",
            content=_body(sealed, _plain("written before encryption")),
            headers={"Origin": UI, "Content-Type": "application/json", "X-Namespace": "default"},
        )
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == UI
        assert _payloads(decoded) == [_plain(PERSONAL), _plain("written before encryption")]
        encoded = await http.post("/codec/encode", content=_body(_plain(PERSONAL)))
        (again,) = _payloads(encoded)
        assert again.metadata["encoding"] == ENCODING and PERSONAL.encode() not in again.data
        # An origin that is not the UI gets no CORS grant.
        stranger = await http.options(
            "/codec/decode",
            headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in stranger.headers


async def test_outside_dev_the_codec_needs_an_ops_key(
    api_db_url: str, localstripe_url: str
) -> None:
    (sealed,) = await EncryptionCodec(PayloadKeys.parse(KEY)).encode([_plain(PERSONAL)])
    origins = ["https://temporal.example.test"]
    async with api(
        api_db_url, localstripe_url, payload_keys=KEY, codec_cors_origins=origins
    ) as http:
        refused = await http.post(
            "/codec/decode", content=_body(sealed), headers={"Origin": origins[0]}
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_api_key")
        assert PERSONAL not in refused.text
        # The browser can read the refusal (CORS headers on errors too).
        assert refused.headers["access-control-allow-origin"] == origins[0]
        server_key = await http.post(
            "/codec/decode",
            content=_body(sealed),
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        assert (server_key.status_code, server_key.json()["error"]["code"]) == (
            403,
            "ops_key_required",
        )
        assert PERSONAL not in server_key.text
        allowed = await http.post(
            "/codec/decode",
            content=_body(sealed),
            headers={"Authorization": f"Bearer {OPS_KEY}"},
        )
        assert _payloads(allowed) == [_plain(PERSONAL)]


async def test_refusals_name_the_problem(api_db_url: str, localstripe_url: str) -> None:
    (foreign,) = await EncryptionCodec(PayloadKeys.parse(OTHER)).encode([_plain(PERSONAL)])
    auth = {"Authorization": f"Bearer {OPS_KEY}"}
    async with api(api_db_url, localstripe_url, payload_keys=KEY) as http:
        unknown = await http.post("/codec/decode", content=_body(foreign), headers=auth)
        assert (unknown.status_code, unknown.json()["error"]["code"]) == (
            422,
            "payload_undecodable",
        )
        assert "'gone'" in unknown.json()["error"]["message"]
        garbage = await http.post("/codec/decode", content=b"{not json", headers=auth)
        assert (garbage.status_code, garbage.json()["error"]["code"]) == (400, "invalid_payloads")
        huge = await http.post("/codec/decode", content=b" " * (4 * 1024 * 1024 + 1), headers=auth)
        assert huge.status_code == 413
        other_action = await http.post("/codec/rot13", content=_body(), headers=auth)
        assert other_action.status_code == 422
    async with api(api_db_url, localstripe_url) as http:
        off = await http.post("/codec/decode", content=_body(foreign), headers=auth)
        assert (off.status_code, off.json()["error"]["code"]) == (404, "codec_off")
