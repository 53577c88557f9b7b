"""The portal lists a customer's own billing notifications, newest first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from ledger.db import make_engine
from stores.notifications import NewNotification, mark_sent, record_pending
from tests.api.conftest import create_customer, portal_headers


def notify(engine_url: str, customer_id: str, kind: str, at: datetime) -> str:
    key = f"test:{uuid.uuid4().hex}"
    engine = make_engine(engine_url)
    try:
        record_pending(
            engine,
            NewNotification(
                key=key,
                customer_id=customer_id,
                subscription_id="sub_x",
                invoice_id="inv_x",
                kind=kind,
                recipient="someone@example.test",
                subject=f"{kind} subject",
                body="Your card was declined. Please use another payment method.",
                message_id=f"<{key}@dunwell>",
            ),
            now=at,
        )
        if kind != "retry_reminder":
            mark_sent(engine, key, now=at)
    finally:
        engine.dispose()
    return key


async def test_notifications_are_listed_for_their_customer_only(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    mine = await create_customer(offline_api)
    theirs = await create_customer(offline_api)
    t0 = datetime.now(UTC)
    notify(api_db_url, mine["id"], "failure_notice", t0)
    notify(api_db_url, mine["id"], "retry_reminder", t0 + timedelta(seconds=1))
    notify(api_db_url, theirs["id"], "failure_notice", t0)

    response = await offline_api.get("/v1/portal/notifications", headers=portal_headers(mine["id"]))
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [i["kind"] for i in items] == ["retry_reminder", "failure_notice"]
    assert items[0]["sent_at"] is None and items[1]["sent_at"] is not None

    other = await offline_api.get("/v1/portal/notifications", headers=portal_headers(theirs["id"]))
    assert [i["kind"] for i in other.json()["items"]] == ["failure_notice"]


async def test_notifications_need_a_portal_session(offline_api: httpx.AsyncClient) -> None:
    response = await offline_api.get("/v1/portal/notifications")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_portal_session"


async def test_a_dismissed_notification_is_no_longer_listed(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    mine = await create_customer(offline_api)
    theirs = await create_customer(offline_api)
    t0 = datetime.now(UTC)
    first = notify(api_db_url, mine["id"], "failure_notice", t0)
    second = notify(api_db_url, mine["id"], "retry_reminder", t0 + timedelta(seconds=1))
    headers = portal_headers(mine["id"])

    # Another customer cannot dismiss it, nor learn that it exists.
    stranger = await offline_api.post(
        f"/v1/portal/notifications/{first}/dismiss", headers=portal_headers(theirs["id"])
    )
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (
        404,
        "notification_not_found",
    )
    for _ in range(2):  # dismissing twice changes nothing the second time
        dismissed = await offline_api.post(
            f"/v1/portal/notifications/{first}/dismiss", headers=headers
        )
        assert dismissed.status_code == 204
    listed = await offline_api.get("/v1/portal/notifications", headers=headers)
    assert [i["key"] for i in listed.json()["items"]] == [second]
    unknown = await offline_api.post(
        "/v1/portal/notifications/test:nothing/dismiss", headers=headers
    )
    assert unknown.status_code == 404
    malformed = await offline_api.post("/v1/portal/notifications/bad key!/dismiss", headers=headers)
    assert malformed.status_code == 422
    anonymous = await offline_api.post(f"/v1/portal/notifications/{second}/dismiss")
    assert anonymous.status_code == 401
