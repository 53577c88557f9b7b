"""Malformed headers and out-of-range parameters are refused with 4xx, never a 500."""

from __future__ import annotations

import asyncio
import time

import pytest

from api.routes.relay import SIGNATURE_HEADER
from tests.webhooks.conftest import OPS_API_KEY, WEBHOOK_SECRET, hmac_header

pytestmark = [pytest.mark.postgres, pytest.mark.temporal]

AUTH = {"Authorization": f"Bearer {OPS_API_KEY}"}


@pytest.mark.parametrize(
    "header",
    [
        "t=1764100000,v1=\xe9\xe9",  # a non-ASCII signature
        "t=\xb2,v1=abcd",  # "²" reads as a digit to str.isdigit, not to int()
        f"t={int(time.time())},v1=\xe9" + "0" * 63,
    ],
)
@pytest.mark.parametrize(
    ("path", "name"), [("/webhooks/stripe", "Stripe-Signature"), ("/v1/events", SIGNATURE_HEADER)]
)
async def test_malformed_signature_headers_are_refused_with_400(api, path, name, header):
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    response = await api.post(path, content=body, headers={name: header.encode("latin-1")})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_signature"


async def test_a_well_formed_stripe_signature_still_verifies_after_the_ascii_check(api):
    body = b'{"id": "evt_1", "type": "invoice.paid"}'
    header = hmac_header(body, WEBHOOK_SECRET) + ",v1=\xe9"
    response = await api.post(
        "/webhooks/stripe", content=body, headers={"Stripe-Signature": header.encode("latin-1")}
    )
    assert response.json()["error"]["code"] == "invalid_signature"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ops/parked-events?after=7890987349691236585218200567808",
        "/v1/ops/parked-events?after=9223372036854775808",
        "/v1/ops/recon/exceptions?after_id=9223372036854775808",
        "/v1/ops/ledger/trial-balance?at=0.5",
        "/v1/ops/ledger/trial-balance?at=1764100000",
        "/v1/ops/ledger/trial-balance?at=-1e3",
    ],
)
async def test_out_of_range_and_off_schema_parameters_are_422(api, path):
    response = await api.get(path, headers=AUTH)
    assert response.status_code == 422, (path, response.text)
    assert response.json()["error"]["code"] == "invalid_request"


async def test_the_largest_cursor_and_an_iso_timestamp_are_accepted(api):
    parked = await api.get("/v1/ops/parked-events?after=9223372036854775807", headers=AUTH)
    assert parked.status_code == 200
    assert parked.json()["items"] == []
    balance = await api.get(
        "/v1/ops/ledger/trial-balance", params={"at": "2026-01-01T00:00:00Z"}, headers=AUTH
    )
    assert balance.status_code == 200


async def test_readiness_does_not_stall_the_api_when_the_database_does(app, api, monkeypatch):
    import api.routes.health as health

    release = asyncio.Event()
    monkeypatch.setattr(health, "DATABASE_TIMEOUT_SECONDS", 0.5)
    engine = app.state.engine
    stalled = engine.connect

    def stall():  # a database that accepts the connection and never answers
        time_limit = time.monotonic() + 5
        while not release.is_set() and time.monotonic() < time_limit:
            time.sleep(0.05)
        return stalled()

    monkeypatch.setattr(engine, "connect", stall)
    ready = asyncio.create_task(api.get("/readyz"))
    # While readiness waits, the event loop serves other requests.
    assert (await api.get("/healthz")).status_code == 200
    response = await ready
    release.set()
    assert response.status_code == 503
    assert response.json()["database"] is False
