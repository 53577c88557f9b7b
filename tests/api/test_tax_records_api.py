"""Ops API for registrations, nexus changes and exemption certificates: recorded with
the actor, listed, every refusal a 422 (404 for an unknown customer) that writes
nothing; a certificate recorded here reaches the portal's plan change preview."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import OPS_AUTH, create_customer, portal_headers
from tests.api.test_subscription_api import subscribe

BASE = "/v1/ops/tax"


async def listed(http: httpx.AsyncClient, what: str, **params: str) -> list[dict[str, Any]]:
    response = await http.get(f"{BASE}/{what}", params=params, headers=OPS_AUTH)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def refused(
    http: httpx.AsyncClient, what: str, body: dict[str, Any], status: int, code: str
) -> None:
    before = await listed(http, what)
    response = await http.post(f"{BASE}/{what}", json=body, headers=OPS_AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert await listed(http, what) == before, "a refused request wrote something"


async def test_registrations_are_recorded_listed_and_refused(
    offline_api: httpx.AsyncClient,
) -> None:
    number = f"IS-{uuid.uuid4().hex[:8]}"
    body = {
        "jurisdiction": "is",
        "tax_type": "vat",
        "registration_number": number,
        "valid_from": "2026-01-01",
        "actor": "ops@example.test",
        "note": "VAT on e-services",
    }
    created = await offline_api.post(f"{BASE}/registrations", json=body, headers=OPS_AUTH)
    assert created.status_code == 201, created.text
    out = created.json()
    assert (out["jurisdiction"], out["actor"], out["valid_to"]) == ("IS", "ops@example.test", None)
    assert out in await listed(offline_api, "registrations", jurisdiction="IS")

    other = {**body, "registration_number": f"IS-{uuid.uuid4().hex[:8]}"}
    await refused(offline_api, "registrations", other, 409, "overlapping_registration")
    backwards = {**other, "valid_from": "2026-05-01", "valid_to": "2026-04-01"}
    await refused(offline_api, "registrations", backwards, 422, "invalid_date_range")
    await refused(
        offline_api, "registrations", {**other, "jurisdiction": "QQ"}, 422, "unknown_jurisdiction"
    )
    await refused(
        offline_api, "registrations", {**other, "tax_type": "magic"}, 422, "invalid_request"
    )
    await refused(offline_api, "registrations", {**other, "actor": ""}, 422, "invalid_request")
    no_auth = await offline_api.post(f"{BASE}/registrations", json=other)
    assert no_auth.status_code == 401


async def test_nexus_changes_are_recorded_listed_and_refused(
    offline_api: httpx.AsyncClient,
) -> None:
    body = {
        "jurisdiction": "US-SD",
        "basis": "economic",
        "valid_from": "2026-02-01",
        "actor": "ops",
    }
    created = await offline_api.post(f"{BASE}/nexus", json=body, headers=OPS_AUTH)
    assert created.status_code == 201, created.text
    assert created.json() in await listed(offline_api, "nexus", jurisdiction="US-SD")
    await refused(
        offline_api, "nexus", {**body, "valid_to": "2026-01-01"}, 422, "invalid_date_range"
    )
    await refused(
        offline_api, "nexus", {**body, "jurisdiction": "US-ZZ"}, 422, "unknown_jurisdiction"
    )
    await refused(offline_api, "nexus", {**body, "basis": "vibes"}, 422, "invalid_request")


async def test_certificates_are_recorded_listed_and_refused(
    offline_api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(offline_api)
    body = {
        "customer_id": customer["id"],
        "jurisdiction": "DE",
        "number": "EX-API-1",
        "valid_from": "2026-01-01",
        "document_ref": "doc://ex-api-1",
        "actor": "ops@example.test",
    }
    created = await offline_api.post(f"{BASE}/certificates", json=body, headers=OPS_AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["actor"] == "ops@example.test"
    assert await listed(offline_api, "certificates", customer_id=customer["id"]) == [created.json()]
    await refused(
        offline_api, "certificates", {**body, "valid_to": "2025-12-31"}, 422, "invalid_date_range"
    )
    await refused(
        offline_api, "certificates", {**body, "jurisdiction": "EU"}, 422, "unknown_jurisdiction"
    )
    await refused(
        offline_api, "certificates", {**body, "customer_id": "cus_nobody"}, 404, "unknown_customer"
    )
    await refused(
        offline_api, "certificates", {**body, "valid_from": "soon"}, 422, "invalid_request"
    )


@pytest.mark.temporal
async def test_a_recorded_certificate_reaches_the_preview(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:

    customer, sub = await subscribe(live_api, localstripe_url)
    portal = portal_headers(customer["id"])
    preview_url = f"/v1/portal/subscriptions/{sub['id']}/preview-change"
    before = await live_api.post(preview_url, json={"plan_id": "business-monthly"}, headers=portal)
    assert before.status_code == 200, before.text
    assert before.json()["tax_total"] > 0
    certificate = {
        "customer_id": customer["id"],
        "jurisdiction": "DE",
        "number": "EX-PREVIEW",
        "valid_from": "2020-01-01",
        "document_ref": "doc://preview",
        "actor": "ops",
    }
    recorded = await live_api.post(f"{BASE}/certificates", json=certificate, headers=OPS_AUTH)
    assert recorded.status_code == 201, recorded.text
    after = await live_api.post(preview_url, json={"plan_id": "business-monthly"}, headers=portal)
    assert after.status_code == 200, after.text
    assert after.json()["tax_total"] == 0
    for line in after.json()["lines"]:
        assert [c["reason"] for c in line["tax"]] == ["customer_exempt"]
