"""API keys by role (issue 15): a server key never reaches an ops route, an ops key
reads but does not write the server API, several keys are valid at once (rotation),
and every ops write and portal-session mint lands in the audit log, readable through
``GET /v1/ops/audit``.

The route tables are built from the app itself, so a new ops route without the ops
guard, or a new server route without the server guard, fails here."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from api.app import create_app
from ledger.db import make_engine
from ledger.reconciliation.exceptions import ExceptionStore
from tests.api.conftest import (
    API_KEY,
    AUTH,
    OPS_AUTH,
    build_app,
    create_customer,
    customer_body,
    make_settings,
    running,
)
from tests.api.test_recon_ops import _open
from tests.support.audit import audit_count, audit_rows

pytestmark = pytest.mark.postgres

# Routes under /v1 that are neither ops nor server API: the portal (session token) and
# the signed relay intake.
_NOT_KEYED = ("/v1/portal/", "/v1/events")


def _routes(prefix: str, *, exclude: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    app = create_app(make_settings("sqlite://", "http://127.0.0.1:1"))
    # Every route as the app serves it, included routers' prefixes applied.
    found = [
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path.startswith(prefix) and not route.path.startswith(exclude)
        for method in sorted(set(route.methods or ()) - {"HEAD"})
    ]
    assert found, prefix
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


OPS_ROUTES = _routes("/v1/ops/")
SERVER_ROUTES = _routes("/v1/", exclude=("/v1/ops/", *_NOT_KEYED))


def test_the_tables_hold_what_they_should() -> None:
    assert ("GET", "/v1/ops/audit") in OPS_ROUTES
    assert ("POST", "/v1/ops/dunning/{invoice_id}/end") in OPS_ROUTES
    assert ("POST", "/v1/ops/reviews/{invoice_id}/write-off") in OPS_ROUTES
    assert ("POST", "/v1/portal-sessions") in SERVER_ROUTES
    assert ("GET", "/v1/customers/{customer_id}/entitlements") in SERVER_ROUTES


@pytest.mark.parametrize(("method", "path"), OPS_ROUTES)
async def test_every_ops_route_refuses_the_server_key_and_changes_nothing(
    offline_api: httpx.AsyncClient, api_db_url: str, method: str, path: str
) -> None:
    before = audit_count(api_db_url)
    url = _concrete(path)
    response = await offline_api.request(method, url, headers=AUTH, json={})
    assert response.status_code == 403, (method, path, response.text)
    assert response.json()["error"]["code"] == "ops_key_required"
    anonymous = await offline_api.request(method, url, json={})
    assert anonymous.status_code == 401, (method, path)
    assert anonymous.json()["error"]["code"] == "invalid_api_key"
    assert audit_count(api_db_url) == before


@pytest.mark.parametrize(("method", "path"), SERVER_ROUTES)
async def test_server_routes_need_a_key_and_an_ops_key_only_reads(
    offline_api: httpx.AsyncClient, api_db_url: str, method: str, path: str
) -> None:
    before = audit_count(api_db_url)
    url = _concrete(path)
    anonymous = await offline_api.request(method, url, json={})
    assert anonymous.status_code == 401, (method, path)
    as_ops = await offline_api.request(method, url, headers=OPS_AUTH, json={})
    if method == "GET":
        assert as_ops.status_code not in (401, 403), (method, path, as_ops.text)
    else:
        assert as_ops.status_code == 403, (method, path, as_ops.text)
        assert as_ops.json()["error"]["code"] == "server_key_required"
    assert audit_count(api_db_url) == before


async def test_an_ops_key_reads_a_customer_but_cannot_mint_a_portal_session(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    customer = await create_customer(offline_api)
    shown = await offline_api.get(f"/v1/customers/{customer['id']}", headers=OPS_AUTH)
    assert shown.status_code == 200 and shown.json()["id"] == customer["id"]
    minted = await offline_api.post(
        "/v1/portal-sessions", json={"customer_id": customer["id"]}, headers=OPS_AUTH
    )
    assert minted.status_code == 403
    assert audit_rows(api_db_url, target=f"customer:{customer['id']}") == []


async def test_several_keys_are_valid_at_once_and_a_removed_one_is_not(
    api_db_url: str, localstripe_url: str
) -> None:
    old, new, ops = "old-" + "o" * 32, "new-" + "n" * 32, "ops-" + "p" * 32
    both = make_settings(
        api_db_url,
        localstripe_url,
        api_keys=f"2026-11:{old},2026-12:{new}",
        ops_api_keys=f"ana:{ops}",
    )
    async with running(build_app(both)) as http:
        created = await http.post(
            "/v1/customers", json=customer_body(), headers={"Authorization": f"Bearer {old}"}
        )
        assert created.status_code == 201, created.text
        customer = created.json()
        for secret in (old, new):
            minted = await http.post(
                "/v1/portal-sessions",
                json={"customer_id": customer["id"]},
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert minted.status_code == 201, minted.text
        # The single keys are not used while the lists are set.
        assert (await http.get("/v1/ops/audit", headers=OPS_AUTH)).status_code == 401
        ops_auth = {"Authorization": f"Bearer {ops}"}
        assert (await http.get("/v1/ops/audit", headers=ops_auth)).status_code == 200
    rows = audit_rows(api_db_url, target=f"customer:{customer['id']}")
    assert [(r.actor, r.action) for r in rows] == [
        ("2026-11", "portal_session.mint"),
        ("2026-12", "portal_session.mint"),
    ]
    rotated = make_settings(
        api_db_url, localstripe_url, api_keys=f"2026-12:{new}", ops_api_keys=f"ana:{ops}"
    )
    async with running(build_app(rotated)) as http:
        gone = await http.get(
            f"/v1/customers/{customer['id']}", headers={"Authorization": f"Bearer {old}"}
        )
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "invalid_api_key"
        kept = await http.get(
            f"/v1/customers/{customer['id']}", headers={"Authorization": f"Bearer {new}"}
        )
        assert kept.status_code == 200


async def test_a_portal_session_mint_is_audited_without_the_token(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    customer = await create_customer(offline_api)
    request_id = f"req-{uuid.uuid4().hex}"
    minted = await offline_api.post(
        "/v1/portal-sessions",
        json={"customer_id": customer["id"]},
        headers={**AUTH, "X-Request-Id": request_id},
    )
    assert minted.status_code == 201
    (row,) = audit_rows(api_db_url, target=f"customer:{customer['id']}")
    assert (row.actor, row.action, row.outcome, row.request_id) == (
        "server",
        "portal_session.mint",
        "done",
        request_id,
    )
    assert row.after == {"expires_at": minted.json()["expires_at"].replace("Z", "+00:00")}
    token = minted.json()["token"]
    assert token not in repr(row) and API_KEY not in repr(row)


async def test_a_bad_request_id_is_refused_and_nothing_is_minted(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    customer = await create_customer(offline_api)
    refused = await offline_api.post(
        "/v1/portal-sessions",
        json={"customer_id": customer["id"]},
        headers={**AUTH, "X-Request-Id": "has spaces and ;"},
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_request_id"
    assert "token" not in refused.text
    assert audit_rows(api_db_url, target=f"customer:{customer['id']}") == []


async def test_a_tax_record_and_its_audit_row_commit_together(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    number = f"NO-{uuid.uuid4().hex[:8]}"
    body = {
        "jurisdiction": "NO",
        "tax_type": "vat",
        "registration_number": number,
        "valid_from": "2026-01-01",
        "actor": "ana@ops",
    }
    created = await offline_api.post("/v1/ops/tax/registrations", json=body, headers=OPS_AUTH)
    assert created.status_code == 201, created.text
    before = audit_count(api_db_url)
    overlapping = {**body, "registration_number": f"NO-{uuid.uuid4().hex[:8]}"}
    refused = await offline_api.post(
        "/v1/ops/tax/registrations", json=overlapping, headers=OPS_AUTH
    )
    assert refused.status_code == 409  # overlapping_registration: a conflict
    assert audit_count(api_db_url) == before  # a refused write writes no audit row either
    rows = [
        r
        for r in audit_rows(api_db_url, action="tax.registration.record")
        if r.after["registration_number"] == number
    ]
    assert len(rows) == 1
    assert (rows[0].actor, rows[0].target, rows[0].before) == ("ops", "jurisdiction:NO", None)
    assert rows[0].after == created.json()


async def test_a_reconciliation_action_is_audited_with_before_and_after(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    xid = _open(ExceptionStore(make_engine(api_db_url)), f"po_{uuid.uuid4().hex[:10]}")
    url = f"/v1/ops/recon/exceptions/{xid}/actions"
    done = await offline_api.post(
        url, json={"action": "acknowledge", "actor": "ana@ops"}, headers=OPS_AUTH
    )
    assert done.status_code == 200
    refused = await offline_api.post(
        url,
        json={"action": "acknowledge", "actor": "ana@ops", "adjusting_entry_id": 1},
        headers=OPS_AUTH,
    )
    assert refused.status_code == 422
    (row,) = audit_rows(api_db_url, target=f"recon_exception:{xid}")
    assert row.action == "recon.exception.acknowledge"
    assert row.before["status"] == "open" and row.after["status"] == "acknowledged"
    assert row.after == done.json()


async def _audit(http: httpx.AsyncClient, **params: Any) -> httpx.Response:
    return await http.get("/v1/ops/audit", params=params, headers=OPS_AUTH)


async def test_the_audit_log_reads_filtered_and_paged(
    offline_api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(offline_api)
    target = f"customer:{customer['id']}"
    for n in range(3):
        minted = await offline_api.post(
            "/v1/portal-sessions",
            json={"customer_id": customer["id"]},
            headers={**AUTH, "X-Request-Id": f"r{n}"},
        )
        assert minted.status_code == 201
    first = (await _audit(offline_api, target=target, limit=2)).json()
    assert [i["request_id"] for i in first["items"]] == ["r0", "r1"]
    assert first["next_after"] == first["items"][-1]["id"]
    rest = (await _audit(offline_api, target=target, after=first["next_after"], limit=2)).json()
    assert [i["request_id"] for i in rest["items"]] == ["r2"] and rest["next_after"] is None
    item = first["items"][0]
    assert (item["actor"], item["action"], item["outcome"]) == (
        "server",
        "portal_session.mint",
        "done",
    )
    assert (await _audit(offline_api, target=target, actor="ops")).json()["items"] == []
    assert (await _audit(offline_api, target=target, action="dunning.end")).json()["items"] == []
    since = item["at"]
    windowed = (await _audit(offline_api, target=target, since=since)).json()["items"]
    assert windowed[0]["id"] == item["id"]
    assert (await _audit(offline_api, target=target, until=since)).json()["items"] == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "invalid_range"),
        ({"since": "2026-12-02T00:00:00"}, "invalid_request"),  # no offset
        ({"limit": 0}, "invalid_request"),
        ({"limit": 501}, "invalid_request"),
        ({"after": -1}, "invalid_request"),
    ],
)
async def test_bad_audit_queries_are_422(
    offline_api: httpx.AsyncClient, params: dict[str, Any], code: str
) -> None:
    response = await _audit(offline_api, **params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


async def test_the_rate_limiter_counts_each_key_by_its_id(
    api_db_url: str, localstripe_url: str
) -> None:
    settings = make_settings(
        api_db_url, localstripe_url, rate_limit_server="2/minute", rate_limit_anonymous="100/minute"
    )
    async with running(build_app(settings)) as http:
        statuses = [
            (await http.get("/v1/ops/audit", params={"limit": 1}, headers=OPS_AUTH)).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        # The server key has its own budget.
        assert (await http.get("/v1/customers/cus_none", headers=AUTH)).status_code == 404


async def test_a_workflow_action_is_recorded_with_its_outcome_even_when_refused(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    payout = f"po_{uuid.uuid4().hex[:10]}"
    response = await offline_api.post(
        f"/v1/ops/recon/payouts/{payout}/run", headers={**OPS_AUTH, "X-Request-Id": "run-1"}
    )
    assert response.status_code == 503  # Temporal is not reachable: nothing started
    (row,) = audit_rows(api_db_url, target=f"payout:{payout}")
    assert (row.actor, row.action, row.outcome, row.request_id, row.after) == (
        "ops",
        "recon.payout.run",
        "temporal_unavailable",
        "run-1",
        None,
    )
