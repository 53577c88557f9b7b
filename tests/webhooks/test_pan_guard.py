"""Every endpoint that accepts a body refuses card data, unlogged."""

from __future__ import annotations

import json
import logging
import re

import pytest

from api.pan_guard import Refusal, card_data_in
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


async def test_card_data_in_the_query_string_or_path_is_refused(api):
    for target in (
        f"/v1/events?card={TEST_CARD}",
        "/v1/events?card=4242%204242%204242%204242",
        "/v1/events?card=4242+4242+4242+4242",
        "/v1/events?card%5Bnumber%5D=on+file",
        "/v1/events?cvc=123",
        f"/v1/customers/{TEST_CARD}",
    ):
        response = await api.post(target, content=b'{"amount": 2000}')
        assert response.status_code == 400, (target, response.text)
        assert response.json()["error"]["code"] == "card_data_refused", target
    # GET requests are guarded too.
    response = await api.get(f"/healthz?note={TEST_CARD}")
    assert response.status_code == 400


async def test_a_json_body_that_is_not_utf8_is_refused_with_415(api):
    body = json.dumps({"note": f"card {TEST_CARD}"}).encode("utf-16")
    for content_type in ("application/json", "", "application/json; charset=utf-16"):
        headers = {"Content-Type": content_type} if content_type else {}
        response = await api.post("/v1/events", content=body, headers=headers)
        assert response.status_code == 415, (content_type, response.text)
        assert response.json()["error"]["code"] == "unsupported_charset"
    latin = json.dumps({"name": "Zoë"}, ensure_ascii=False).encode("latin-1")
    response = await api.post(
        "/v1/events", content=latin, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 415
    # A UTF-8 byte-order mark is UTF-8: it reaches the route.
    bom = b"\xef\xbb\xbf" + b'{"amount": 2000}'
    response = await api.post(
        "/v1/events", content=bom, headers={"Content-Type": "application/json"}
    )
    assert response.json()["error"]["code"] == "missing_signature"


async def test_a_text_body_is_read_in_its_declared_charset(api):
    body = f"my card {TEST_CARD}".encode("utf-16")
    response = await api.post(
        "/v1/events", content=body, headers={"Content-Type": "text/plain; charset=utf-16"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_refused"
    response = await api.post(
        "/v1/events", content=b"hello", headers={"Content-Type": "text/plain; charset=x-nope"}
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_charset"


async def test_deep_json_is_refused_with_400_never_500(api):
    for body in (b"[" * 5000 + b"]" * 5000, b'{"a":' * 100 + b"1" + b"}" * 100):
        response = await api.post(
            "/v1/events", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "body_too_deep"
        assert "Traceback" not in response.text


async def test_a_megabyte_of_digit_groups_is_refused_as_unverifiable(api):
    from api.pan_guard import MAX_BODY_BYTES

    response = await api.post("/v1/events", content=b"1 " * (MAX_BODY_BYTES // 2))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_unverifiable"
    # Other clients are answered meanwhile and afterwards.
    assert (await api.get("/healthz")).status_code == 200


async def test_a_json_float_with_many_digits_is_not_card_data(api):
    body = b'{"amount": 2000, "ratio": 5.6957321794073064e+16}'
    response = await api.post(
        "/v1/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.json()["error"]["code"] == "missing_signature"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({"card_cvc2": "123"}).encode(),
        json.dumps({"payment": {"cvn": "123"}}).encode(),
        json.dumps({"note": "4242.4242.4242.4242"}).encode(),
        json.dumps({"note": "4242\t4242\t4242\t4242"}).encode(),
        json.dumps({"note": "\uff14\uff12" * 8}, ensure_ascii=False).encode(),
        b"card_cvc2=123",
        b"note=4242%2D4242%2D4242%2D4242",
        b"note=%34%32%34%32424242424242",
        b"note=4242%094242%094242%094242",
    ],
)
def test_walk_arounds_of_the_first_guard_are_caught(body):
    assert card_data_in(body, "application/json") in {"card_number", "card_field"}
    if not body.startswith(b"{"):  # a form body is read as a form whatever its declared type
        assert card_data_in(body, "application/x-www-form-urlencoded") in {
            "card_number",
            "card_field",
        }


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"a=" + b"1+" * 500_000, "application/x-www-form-urlencoded"),
        (b"a=" + b"1%20" * 250_000, "application/x-www-form-urlencoded"),
        (b"a=1&" * 250_000, "application/x-www-form-urlencoded"),
        (json.dumps([1] * 300_000).encode(), "application/json"),
        (json.dumps(["1 1 1 1 1 1 1 1 1 1 1 1 1 1"] * 20_000).encode(), "application/json"),
    ],
)
def test_hostile_forms_and_lists_end_in_the_budget(body, content_type):
    with pytest.raises(Refusal) as refused:
        card_data_in(body, content_type)
    assert refused.value.status == 400
    assert refused.value.code == "card_data_unverifiable"
