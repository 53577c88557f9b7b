"""A portal upgrade whose on-session charge needs 3-D Secure, through the portal API
against the real workflow (Temporal dev server, worker, PostgreSQL, localstripe):
``change-plan`` answers ``requires_action`` with the client secret, and the report to
``change-plan/authentication`` ends it, applied or reverted by the gateway's record."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import (
    AUTH,
    card_token,
    create_customer,
    portal_headers,
    until,
)
from tests.api.test_portal_payment_confirmation import REQUIRES_3DS, authenticate_on_localstripe


async def _pro_on_a_3ds_card(
    http: httpx.AsyncClient, localstripe_url: str
) -> tuple[str, dict[str, str]]:
    customer = await create_customer(http)
    created = await http.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": "pro-monthly",
            "currency": "EUR",
            "payment_method_id": card_token(localstripe_url),
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    sid: str = created.json()["id"]
    await until(http, sid, lambda s: s["status"] == "active")
    portal = portal_headers(customer["id"])
    switched = await http.post(
        f"/v1/portal/subscriptions/{sid}/payment-method",
        json={"payment_method_id": card_token(localstripe_url, REQUIRES_3DS)},
        headers=portal,
    )
    assert switched.status_code == 200, switched.text
    return sid, portal


async def _upgrade(http: httpx.AsyncClient, sid: str, portal: dict[str, str]) -> dict[str, Any]:
    response = await http.post(
        f"/v1/portal/subscriptions/{sid}/change-plan",
        json={"plan_id": "business-monthly"},
        headers=portal,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_upgrade_needing_3ds_is_applied_once_the_bank_confirms(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    sid, portal = await _pro_on_a_3ds_card(live_api, localstripe_url)
    nothing = await live_api.post(
        f"/v1/portal/subscriptions/{sid}/change-plan/authentication",
        json={"payment_intent_id": "pi_nothing", "outcome": "succeeded"},
        headers=portal,
    )
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (
        409,
        "no_pending_authentication",
    )

    asked = await _upgrade(live_api, sid, portal)
    assert asked["outcome"] == "requires_action"
    assert asked["client_secret"].startswith(asked["payment_intent_id"])
    assert asked["stripe_js_url"].endswith("/js.stripe.com/v3/")
    waiting = asked["subscription"]
    assert waiting["plan_id"] == "pro-monthly"
    assert waiting["migrating_to"] == "business-monthly"
    assert waiting["upgrade_authentication"]["payment_intent_id"] == asked["payment_intent_id"]

    # One change at a time: another waits for this one's payment.
    second = await live_api.post(
        f"/v1/portal/subscriptions/{sid}/change-plan",
        json={"plan_id": "starter-monthly"},
        headers=portal,
    )
    assert (second.status_code, second.json()["error"]["code"]) == (409, "change_in_progress")
    wrong = await live_api.post(
        f"/v1/portal/subscriptions/{sid}/change-plan/authentication",
        json={"payment_intent_id": "pi_other", "outcome": "succeeded"},
        headers=portal,
    )
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (409, "payment_intent_mismatch")

    authenticate_on_localstripe(localstripe_url, asked["payment_intent_id"], asked["client_secret"])
    done = await live_api.post(
        f"/v1/portal/subscriptions/{sid}/change-plan/authentication",
        json={"payment_intent_id": asked["payment_intent_id"], "outcome": "succeeded"},
        headers=portal,
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert (body["outcome"], body["plan_id"]) == ("applied", "business-monthly")
    assert body["subscription"]["upgrade_authentication"] is None
    assert body["subscription"]["plan_id"] == "business-monthly"
    assert "client_secret" not in done.text or body["client_secret"] is None


async def test_failed_3ds_reverts_the_upgrade_without_review(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    sid, portal = await _pro_on_a_3ds_card(live_api, localstripe_url)
    asked = await _upgrade(live_api, sid, portal)
    assert asked["outcome"] == "requires_action"
    failed = await live_api.post(
        f"/v1/portal/subscriptions/{sid}/change-plan/authentication",
        json={"payment_intent_id": asked["payment_intent_id"], "outcome": "failed"},
        headers=portal,
    )
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert (body["outcome"], body["plan_id"], body["reason"]) == (
        "reverted",
        "pro-monthly",
        "authentication_failed",
    )
    change = body["subscription"]["plan_changes"][-1]
    assert (change["outcome"], change["reason"]) == ("reverted", "authentication_failed")
    assert change["credit_note_id"]
    bad = await live_api.post(
        f"/v1/portal/subscriptions/{sid}/change-plan/authentication",
        json={"payment_intent_id": asked["payment_intent_id"], "outcome": "maybe"},
        headers=portal,
    )
    assert bad.status_code == 422
