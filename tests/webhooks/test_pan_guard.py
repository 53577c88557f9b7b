"""Every endpoint that accepts a body refuses card data, unlogged."""

from __future__ import annotations

import json
import logging
import re

import pytest

from api.pan_guard import card_data_in
from tests.webhooks.conftest import WEBHOOK_SECRET, api_routes, hmac_header

pytestmark = [pytest.mark.postgres, pytest.mark.temporal]

TEST_CARD = "4242424242424242"
AMEX_TEST_CARD = "378282246310005"

CARD_BODIES: dict[str, tuple[bytes, str]] = {
    "json string": (
        json.dumps({"note": f"my card is {TEST_CARD}"}).encode(),
        "application/json",
    ),
    "json number": (b'{"amount": 4242424242424242}', "application/json"),
    "nested card.number": (
        json.dumps({"card": {"number": "4242 4242 4242 4242", "exp_month": 12}}).encode(),
        "application/json",
    ),
    "card field name only": (
        json.dumps({"payment": {"card": {"number": "on file"}}}).encode(),
        "application/json",
    ),
    "cvc field": (json.dumps({"cvc": "123"}).encode(), "application/json"),
    "unicode escaped": (
        json.dumps({"x": "".join(f"\\u{ord(c):04x}" for c in TEST_CARD)})
        .replace("\\\\", "\\")
        .encode(),
        "application/json",
    ),
    "form encoded": (
        b"card%5Bnumber%5D=4242+4242+4242+4242&card%5Bexp_month%5D=12",
        "application/x-www-form-urlencoded",
    ),
    "form field name only": (b"card[cvc]=xyz", "application/x-www-form-urlencoded"),
    "dashed amex, no type": (b"pay 3782-822463-10005 please", ""),
    "multipart": (
        b'--b\r\nContent-Disposition: form-data; name="card_number"\r\n\r\nsee below\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
}


def body_routes(app) -> list[tuple[str, str]]:
    found = []
    for path, methods in api_routes(app):
        for method in sorted(methods & {"POST", "PUT", "PATCH"}):
            found.append((method, re.sub(r"\{[^}]+\}", "x", path)))
    # The walk must see at least every documented body endpoint.
    documented = {
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path))
        for path, operations in app.openapi()["paths"].items()
        for method in operations
        if method in ("post", "put", "patch")
    }
    assert documented <= set(found)
    return found


async def test_every_body_endpoint_refuses_card_data(app, api, caplog):
    routes = body_routes(app)
    assert ("POST", "/webhooks/stripe") in routes
    assert ("POST", "/v1/events") in routes

    caplog.set_level(logging.DEBUG)
    for method, path in routes:
        for name, (body, content_type) in CARD_BODIES.items():
            headers = {"Content-Type": content_type} if content_type else {}
            # A valid webhook signature too: the guard must not depend on the route.
            headers["Stripe-Signature"] = hmac_header(body, WEBHOOK_SECRET)
            response = await api.request(method, path, content=body, headers=headers)
            assert response.status_code == 400, (method, path, name, response.text)
            assert response.json()["error"]["code"] == "card_data_refused", (path, name)

    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "refused a request" in logged
    assert TEST_CARD not in logged
    assert "4242 4242" not in logged
    assert AMEX_TEST_CARD not in logged.replace("-", "")


async def test_chunked_body_is_inspected_whole_and_clean_bodies_pass_unchanged(api):
    async def chunks():
        yield b'{"note": "4242 4242 '
        yield b'4242 4242"}'

    refused = await api.post("/v1/events", content=chunks())
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "card_data_refused"

    # Not card data: the route sees the body (it fails signature, not the guard).
    passed = await api.post("/v1/events", content=b'{"amount": 2000, "created": 1764100000}')
    assert passed.status_code == 400
    assert passed.json()["error"]["code"] == "missing_signature"


@pytest.mark.parametrize(
    "body",
    [
        b'{"id": "evt_1Q2w3E4r5T6y7U8i", "created": 1764100000, "amount_due": 2000}',
        b'{"phone": "+1 415 555 0100", "postal_code": "94103"}',
        b'{"description": "invoice 2026-11-0001"}',
        b"amount=2000&currency=eur",
        b"",
    ],
)
def test_ordinary_bodies_carry_no_card_data(body):
    assert card_data_in(body, "application/json") is None


async def test_oversized_bodies_are_refused_before_inspection(api):
    from api.pan_guard import MAX_BODY_BYTES

    response = await api.post("/v1/events", content=b"x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
