"""Access and entitlements through the server API and the portal, against the real
workflow (Temporal dev server, worker, PostgreSQL, localstripe), and their error paths."""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from dunwell.settings import Settings
from ledger.db import make_engine
from stores.customers import SubscriptionRecord, insert_subscription
from tests.api.conftest import AUTH, create_customer, portal_headers, until
from tests.api.test_subscription_api import subscribe

PRO = {"seats": 5, "api_calls_per_month": 100000, "sso": False}
BUSINESS = {"seats": 25, "api_calls_per_month": 1000000, "sso": True}


def letters(n: int = 12) -> str:
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(n))


@pytest.mark.temporal
async def test_a_trial_grants_the_plans_features_until_a_cancellation_ends_it(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url, plan_id="pro-monthly", trial=True)
    response = await live_api.get(f"/v1/subscriptions/{sub['id']}/access", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["has_access"] is True
    assert body["reason"] == "trialing"
    assert body["features"] == PRO
    assert body["next_change_at"] is None
    assert (body["subscription_id"], body["customer_id"]) == (sub["id"], customer["id"])

    portal = portal_headers(customer["id"])
    canceled = await live_api.post(f"/v1/portal/subscriptions/{sub['id']}/cancel", headers=portal)
    assert canceled.status_code == 200, canceled.text
    after = (await live_api.get(f"/v1/subscriptions/{sub['id']}/access", headers=AUTH)).json()
    assert after["has_access"] is True
    assert after["next_change"] == "access_ends"
    assert after["next_change_at"] is not None
    assert datetime.fromisoformat(after["next_change_at"]) == datetime.fromisoformat(
        sub["current_period_end"]
    )
    # The portal read shows the customer the same access.
    mine = await live_api.get(f"/v1/portal/subscriptions/{sub['id']}", headers=portal)
    assert mine.status_code == 200
    shown = mine.json()["access"]
    assert {k: shown[k] for k in ("has_access", "reason", "features", "next_change_at")} == {
        k: after[k] for k in ("has_access", "reason", "features", "next_change_at")
    }


@pytest.mark.temporal
async def test_customer_entitlements_merge_the_subscriptions_that_grant_access(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer, first = await subscribe(live_api, localstripe_url, plan_id="pro-monthly")
    _, second = await subscribe(
        live_api, localstripe_url, plan_id="business-monthly", customer=customer
    )
    response = await live_api.get(f"/v1/customers/{customer['id']}/entitlements", headers=AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_access"] is True
    assert body["features"] == {"seats": 25, "api_calls_per_month": 1000000, "sso": True}
    by_id = {s["subscription_id"]: s for s in body["subscriptions"]}
    assert by_id[first["id"]]["features"] == PRO
    assert by_id[second["id"]]["features"] == BUSINESS
    assert {s["reason"] for s in body["subscriptions"]} == {"active"}
    await until(live_api, first["id"], lambda s: s["access"]["reason"] == "active")


@pytest.mark.temporal
async def test_a_customer_without_subscriptions_has_no_access(live_api: httpx.AsyncClient) -> None:
    customer = await create_customer(live_api)
    response = await live_api.get(f"/v1/customers/{customer['id']}/entitlements", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "customer_id": customer["id"],
        "has_access": False,
        "features": {},
        "subscriptions": [],
    }


async def test_access_needs_the_api_key(offline_api: httpx.AsyncClient) -> None:
    for path in ["/v1/subscriptions/sub_x/access", "/v1/customers/cust_x/entitlements"]:
        response = await offline_api.get(path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_subscription_or_customer_is_404(offline_api: httpx.AsyncClient) -> None:
    for path in ["/v1/subscriptions/sub_nothing/access", "/v1/customers/cust_nobody/entitlements"]:
        response = await offline_api.get(path, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"].endswith("_not_found")


async def test_malformed_ids_are_422(offline_api: httpx.AsyncClient) -> None:
    for path in ["/v1/subscriptions/sub%20x/access", "/v1/customers/c%21/entitlements"]:
        response = await offline_api.get(path, headers=AUTH)
        assert response.status_code == 422, path
        assert response.json()["error"]["code"] == "invalid_request"


async def test_temporal_unreachable_is_503(
    offline_api: httpx.AsyncClient, offline_settings: Settings
) -> None:
    customer = await create_customer(offline_api)
    sid = f"sub_{letters()}"
    engine = make_engine(offline_settings.database_url)
    with engine.begin() as conn:
        insert_subscription(
            conn,
            SubscriptionRecord(
                id=sid,
                customer_id=customer["id"],
                plan_id="pro-monthly",
                currency="EUR",
                workflow_id=f"subscription-{sid}",
                created_at=datetime.now(UTC),
            ),
        )
    engine.dispose()
    for path in [f"/v1/subscriptions/{sid}/access", f"/v1/customers/{customer['id']}/entitlements"]:
        response = await offline_api.get(path, headers=AUTH)
        assert response.status_code == 503, (path, response.text)
        assert response.json()["error"]["code"] == "temporal_unavailable"
        assert int(response.headers["Retry-After"]) > 0
