"""What the OpenAPI document says a parameter or field looks like is what the API
accepts: values the schema rules out are refused with 422 and change nothing, and the
schema states the bounds the routes check (found by Schemathesis, see
tests/e2e/test_openapi_conformance.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.conftest import OPS_AUTH as AUTH

pytestmark = pytest.mark.postgres

REFUSED_QUERIES = [
    # Pydantic reads a number as a date (0 → 1970-01-01); the schema says ISO 8601.
    ("/v1/ops/tax/nexus-positions", {"day": "0"}, "day"),
    ("/v1/ops/tax/nexus-positions", {"day": "1700000000"}, "day"),
    ("/v1/ops/tax/liability", {"from": "", "to": "2030-01-01"}, "from"),
    ("/v1/ops/tax/liability", {"from": "2030-00-01", "to": "2030-02-01"}, "from"),
    ("/v1/ops/tax/oss", {"quarter": ""}, "quarter"),
    ("/v1/ops/tax/oss", {"quarter": "2030Q5"}, "quarter"),
]


@pytest.mark.parametrize(("path", "params", "field"), REFUSED_QUERIES)
async def test_a_query_value_the_schema_rules_out_is_refused(
    offline_api: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await offline_api.get(path, params=params, headers=AUTH)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"][0]["loc"] == ["query", field]


async def test_an_iso_date_in_the_query_is_still_read(offline_api: httpx.AsyncClient) -> None:
    response = await offline_api.get(
        "/v1/ops/tax/nexus-positions", params={"day": "2030-03-31"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    assert response.json()["day"] == "2030-03-31"


NUMBER_AS_DATE: list[tuple[str, dict[str, Any]]] = [
    (
        "registrations",
        {"jurisdiction": "US-TX", "registration_number": "TX-1", "valid_from": 0, "actor": "a"},
    ),
    ("nexus", {"jurisdiction": "US-TX", "basis": "economic", "valid_from": 0, "actor": "a"}),
]


@pytest.mark.parametrize(("what", "body"), NUMBER_AS_DATE)
async def test_a_number_for_a_date_in_a_body_is_refused_and_records_nothing(
    offline_api: httpx.AsyncClient, what: str, body: dict[str, Any]
) -> None:
    before = (await offline_api.get(f"/v1/ops/tax/{what}", headers=AUTH)).json()
    response = await offline_api.post(f"/v1/ops/tax/{what}", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["loc"] == ["body", "valid_from"]
    assert (await offline_api.get(f"/v1/ops/tax/{what}", headers=AUTH)).json() == before


async def test_a_payout_id_is_checked_before_any_run_starts(
    offline_api: httpx.AsyncClient,
) -> None:
    response = await offline_api.post("/v1/ops/recon/payouts/0/run", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["path", "payout_id"]


async def test_the_schema_states_the_bounds_the_routes_check(
    offline_api: httpx.AsyncClient,
) -> None:
    schema = (await offline_api.get("/openapi.json")).json()
    components = schema["components"]["schemas"]
    refund = components["RefundIn"]["properties"]
    assert refund["amount"]["minimum"] == 1
    assert set(refund["reason"]["enum"]) >= {"requested_by_customer", "duplicate"}
    assert components["NoteIn"]["properties"]["idempotency_key"]["maxLength"] == 180
    run = schema["paths"]["/v1/ops/recon/payouts/{payout_id}/run"]["post"]
    assert run["parameters"][0]["schema"]["pattern"].startswith("^po_")
    exception = schema["paths"]["/v1/ops/recon/exceptions/{exception_id}"]["get"]
    assert exception["parameters"][0]["schema"]["maximum"] == 2**63 - 1
