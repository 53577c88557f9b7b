"""Server API for event endpoints: register with a generated secret, list, read, rotate
with an overlap, disable and enable; every refusal names its code and writes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.services.endpoints import check_endpoint_url
from billing.outbound import RefusedUrl
from dunwell.settings import Environment, Settings
from ledger.db import make_engine
from ledger.outbound import endpoints
from tests.api.conftest import AUTH, OPS_AUTH

BASE = "/v1/webhook-endpoints"
BODY = {"url": "http://127.0.0.1:8765/hooks", "event_types": ["invoice.paid", "access.revoked"]}


async def listed(http: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await http.get(BASE, headers=AUTH)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def refused(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    before = await listed(http)
    response = await http.post(path, json=body, headers=AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert await listed(http) == before, "a refused request wrote something"


async def test_register_list_read_disable_enable(offline_api: httpx.AsyncClient) -> None:
    created = await offline_api.post(BASE, json={**BODY, "description": "crm"}, headers=AUTH)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["secret"].startswith("whsec_") and out["status"] == "enabled"
    assert out["event_types"] == BODY["event_types"]
    shown = {k: v for k, v in out.items() if k != "secret"}
    assert shown in await listed(offline_api)
    read = await offline_api.get(f"{BASE}/{out['id']}", headers=AUTH)
    assert read.json() == shown

    disabled = await offline_api.post(
        f"{BASE}/{out['id']}/disable", json={"reason": "maintenance"}, headers=AUTH
    )
    assert (disabled.json()["status"], disabled.json()["status_reason"]) == (
        "disabled",
        "maintenance",
    )
    enabled = await offline_api.post(f"{BASE}/{out['id']}/enable", json={}, headers=AUTH)
    assert enabled.json()["status"] == "enabled"
    again = await offline_api.post(f"{BASE}/{out['id']}/enable", json={}, headers=AUTH)
    assert again.json() == enabled.json(), "enabling an enabled endpoint changes nothing"


async def test_rotation_keeps_the_old_secret_for_the_overlap(
    offline_api: httpx.AsyncClient, offline_settings: Settings
) -> None:
    out = (await offline_api.post(BASE, json=BODY, headers=AUTH)).json()
    rotated = await offline_api.post(
        f"{BASE}/{out['id']}/rotate-secret", json={"overlap_seconds": 3600}, headers=AUTH
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["secret"].startswith("whsec_") and new["secret"] != out["secret"]
    until = datetime.fromisoformat(new["previous_secrets_expire_at"])
    engine = make_engine(offline_settings.database_url)
    try:
        now = datetime.now(UTC)
        signing = [s.secret for s in endpoints.secrets_of(engine, out["id"], now)]
        assert signing == [new["secret"], out["secret"]], "the current one first"
        after = [s.secret for s in endpoints.secrets_of(engine, out["id"], until)]
        assert after == [new["secret"]]
    finally:
        engine.dispose()
    await refused(
        offline_api,
        f"{BASE}/{out['id']}/rotate-secret",
        {"overlap_seconds": 8 * 86_400},
        422,
        "invalid_request",
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({**BODY, "event_types": ["invoice.paid", "invoice.exploded"]}, "unknown_event_type"),
        ({**BODY, "event_types": []}, "invalid_request"),
        ({**BODY, "url": "ftp://127.0.0.1/x"}, "invalid_url"),
        ({**BODY, "url": "http://user:pw@127.0.0.1/x"}, "invalid_url"),
        ({**BODY, "url": "http://10.1.2.3/hooks"}, "url_not_allowed"),
        ({**BODY, "url": "http://169.254.169.254/latest"}, "url_not_allowed"),
        ({**BODY, "url": "http://does-not-resolve.invalid/x"}, "url_not_allowed"),
    ],
)
async def test_bad_registrations_are_refused(
    offline_api: httpx.AsyncClient, body: dict[str, Any], code: str
) -> None:
    await refused(offline_api, BASE, body, 422, code)


async def test_unknown_endpoints_are_404(offline_api: httpx.AsyncClient) -> None:
    assert (await offline_api.get(f"{BASE}/we_missing", headers=AUTH)).status_code == 404
    for action, body in (("disable", {}), ("enable", {}), ("rotate-secret", {})):
        await refused(offline_api, f"{BASE}/we_missing/{action}", body, 404, "endpoint_not_found")


async def test_the_api_key_is_required(offline_api: httpx.AsyncClient) -> None:
    assert (await offline_api.get(BASE)).status_code == 401
    assert (await offline_api.post(BASE, json=BODY)).status_code == 401
    # An ops key reads endpoints but registers none (a server key's job).
    assert (await offline_api.get(BASE, headers=OPS_AUTH)).status_code == 200
    before = await listed(offline_api)
    refused = await offline_api.post(BASE, json=BODY, headers=OPS_AUTH)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "server_key_required"
    assert await listed(offline_api) == before


async def test_production_refuses_loopback_and_plain_http() -> None:
    settings = Settings(env="test")
    await check_endpoint_url("http://127.0.0.1:9/x", settings)  # allowed outside production
    production = settings.model_copy(update={"env": Environment.PRODUCTION})
    with pytest.raises(RefusedUrl) as plain:
        await check_endpoint_url("http://127.0.0.1:9/x", production)
    assert plain.value.code == "invalid_url"
    with pytest.raises(RefusedUrl) as loopback:
        await check_endpoint_url("https://127.0.0.1:9/x", production)
    assert loopback.value.code == "url_not_allowed"
    with pytest.raises(RefusedUrl) as ipv6:
        await check_endpoint_url("https://[::1]:9/x", production)
    assert ipv6.value.code == "url_not_allowed"
    assert timedelta(days=7) == endpoints.MAX_OVERLAP
