"""Payments waiting for 3-D Secure through the portal API: ``confirm-payment`` hands the
page the PaymentIntent's client secret, ``confirm-payment/complete`` settles the invoice
once the gateway has seen the payment succeed. Live routes run against the real workflow
(Temporal dev server, worker, PostgreSQL, localstripe); an action-required renewal is
produced by backdating a subscription so that it renews a few seconds later, on a card
whose issuer demands 3-D Secure."""

from __future__ import annotations

import logging
import random
import string
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.errors import ApiError
from api.services import subscriptions as service
from billing.periods import boundary
from dunwell.settings import Settings
from ledger.db import make_engine
from stores.customers import SubscriptionRecord, get_subscription, insert_subscription
from stores.tables import subscriptions as subscription_rows
from tests.api.conftest import (
    AUTH,
    STRIPE_KEY,
    build_app,
    card_token,
    create_customer,
    make_settings,
    portal_headers,
    running,
    until,
)
from tests.api.notifying_worker import notifying_worker
from workflows.subscription.state import ConfirmPaymentRequest

REQUIRES_3DS = "4000002500003155"
# How long after its creation a backdated subscription renews.
RENEWS_IN = timedelta(seconds=12)

CONFIRM = "/v1/portal/subscriptions/{id}/confirm-payment"
COMPLETE = "/v1/portal/subscriptions/{id}/confirm-payment/complete"


@pytest.fixture(scope="module")
async def payments_api(
    temporal_dev_env: WorkflowEnvironment,
    api_db_url: str,
    localstripe_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[httpx.AsyncClient]:
    """The API on a worker that also sends notices (see ``notifying_worker``)."""
    async with notifying_worker(
        temporal_dev_env.client,
        db_url=api_db_url,
        localstripe_url=localstripe_url,
        mail_dir=tmp_path_factory.mktemp("payment-mail"),
    ) as task_queue:
        settings = make_settings(api_db_url, localstripe_url, task_queue=task_queue)
        async with running(build_app(settings, temporal_dev_env.client)) as http:
            yield http


# --- helpers -----------------------------------------------------------------------------


def waiting(sub: dict[str, Any]) -> bool:
    action = sub["pending_action"]
    return action is not None and action["status"] == "waiting"


async def renewal_needing_3ds(
    http: httpx.AsyncClient, localstripe_url: str, plan_id: str = "pro-monthly"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A subscription paid once, whose renewal (a few seconds later) is charged off-session
    on a card that needs 3-D Secure: the workflow waits for the customer. Returns the
    customer and the subscription as the server API reads it once the action waits."""
    customer = await create_customer(http)
    start = boundary(datetime.now(UTC), -1) + RENEWS_IN
    created = await http.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": plan_id,
            "currency": "EUR",
            "payment_method_id": card_token(localstripe_url),
            "backdate_start_date": start.isoformat(),
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    sid = created.json()["id"]
    active = await until(
        http,
        sid,
        lambda s: (
            s["status"] == "active" and [i["status"] for i in s["recent_invoices"]] == ["paid"]
        ),
    )
    portal = portal_headers(customer["id"])

    # Nothing waits yet: both routes say so.
    early = await http.post(CONFIRM.format(id=sid), headers=portal)
    assert (early.status_code, early.json()["error"]["code"]) == (409, "no_pending_action")
    early_done = await http.post(
        COMPLETE.format(id=sid), json={"payment_intent_id": "pi_nothing"}, headers=portal
    )
    assert (early_done.status_code, early_done.json()["error"]["code"]) == (
        409,
        "no_pending_action",
    )

    switched = await http.post(
        f"/v1/portal/subscriptions/{sid}/payment-method",
        json={"payment_method_id": card_token(localstripe_url, REQUIRES_3DS)},
        headers=portal,
    )
    assert switched.status_code == 200, switched.text
    renews_at = datetime.fromisoformat(active["current_period_end"])
    assert datetime.now(UTC) < renews_at, "the card was switched too late for the renewal"
    past_due = await until(http, sid, waiting, timeout=60.0)
    assert past_due["status"] == "past_due"
    return customer, past_due


def authenticate_on_localstripe(base_url: str, payment_intent_id: str, client_secret: str) -> None:
    """What the customer's browser does through Stripe.js's 3-D Secure dialog."""
    data = urllib.parse.urlencode({"client_secret": client_secret, "success": "true"}).encode()
    request = urllib.request.Request(
        f"{base_url}/v1/payment_intents/{payment_intent_id}/_authenticate",
        data=data,
        method="POST",
        headers={"Authorization": f"Bearer {STRIPE_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def _code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- live: the real workflow ---------------------------------------------------------------


@pytest.mark.temporal
@pytest.mark.slow
async def test_action_required_renewal_is_confirmed_through_the_portal(
    payments_api: httpx.AsyncClient, localstripe_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # what a deployment records
    customer, past_due = await renewal_needing_3ds(payments_api, localstripe_url)
    sid = past_due["id"]
    portal = portal_headers(customer["id"])
    confirm, complete = CONFIRM.format(id=sid), COMPLETE.format(id=sid)

    # The subscription read shows the waiting action and the card's display details only.
    read = await payments_api.get(f"/v1/portal/subscriptions/{sid}", headers=portal)
    assert read.status_code == 200
    sub = read.json()
    action = sub["pending_action"]
    assert set(action) == {"status", "invoice_id", "amount", "currency", "deadline"}
    renewal = sub["recent_invoices"][-1]
    assert (renewal["purpose"], renewal["status"]) == ("renewal", "open")
    assert action["invoice_id"] == renewal["invoice_id"]
    assert (action["status"], action["amount"], action["currency"]) == (
        "waiting",
        renewal["total"],
        "EUR",
    )
    assert datetime.fromisoformat(action["deadline"]) > datetime.now(UTC) + timedelta(hours=71)
    assert sub["payment_method"] == {
        "brand": "visa",
        "last4": "3155",
        "exp_month": 12,
        "exp_year": 2031,
    }
    assert "fingerprint" not in read.text

    # Another customer learns nothing of it.
    bob = await create_customer(payments_api, name="Bob")
    bobs = portal_headers(bob["id"])
    assert _code(await payments_api.post(confirm, headers=bobs)) == (404, "subscription_not_found")
    assert _code(
        await payments_api.post(complete, json={"payment_intent_id": "pi_x"}, headers=bobs)
    ) == (404, "subscription_not_found")

    # Begin: the bank wants a challenge (pro-monthly is above the low-value exemption).
    started = await payments_api.post(confirm, headers=portal)
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) == {
        "outcome",
        "payment_intent_id",
        "client_secret",
        "challenge",
        "exemption",
        "reason",
        "publishable_key",
        "stripe_js_url",
        "subscription",
    }
    assert body["outcome"] == "requires_action"
    assert (body["challenge"], body["reason"]) == (True, "sca_required")
    intent_id = body["payment_intent_id"]
    secret = body["client_secret"]
    assert intent_id.startswith("pi_") and secret.startswith(f"{intent_id}_secret_")
    assert body["stripe_js_url"] == f"{localstripe_url}/js.stripe.com/v3/"
    assert body["subscription"]["pending_action"]["status"] == "waiting"
    again = await payments_api.post(confirm, headers=portal)
    assert again.json()["payment_intent_id"] == intent_id, "the same intent, no new charge"

    # Completing the wrong intent, or one the bank has not approved yet, is refused.
    mismatch = await payments_api.post(
        complete, json={"payment_intent_id": "pi_other"}, headers=portal
    )
    assert _code(mismatch) == (409, "payment_intent_mismatch")
    assert mismatch.json()["error"]["message"]
    not_yet = await payments_api.post(
        complete, json={"payment_intent_id": intent_id}, headers=portal
    )
    assert _code(not_yet) == (409, "payment_not_completed")
    assert not_yet.json()["error"]["message"]

    # Malformed bodies are 422 and reach nothing.
    for bad in (
        {"payment_intent_id": "seti_123"},
        {"payment_intent_id": "pm_123"},
        {"payment_intent_id": ""},
        {"payment_intent_id": "pi_has spaces"},
        {"payment_intent_id": 12},
        {},
        {"payment_intent_id": intent_id, "client_secret": secret},
    ):
        refused = await payments_api.post(complete, json=bad, headers=portal)
        assert _code(refused) == (422, "invalid_request"), bad
        assert secret not in refused.text

    # The customer passes the bank's check (Stripe.js in the browser), then completes.
    authenticate_on_localstripe(localstripe_url, intent_id, secret)
    done = await payments_api.post(complete, json={"payment_intent_id": intent_id}, headers=portal)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["pending_action"]["status"] == "confirmed"
    assert result["pending_action"]["invoice_id"] == action["invoice_id"]
    assert result["subscription"]["status"] == "active"
    assert result["subscription"]["recent_invoices"][-1]["status"] == "paid"
    invoices = (await payments_api.get("/v1/portal/invoices", headers=portal)).json()["items"]
    assert {i["id"]: i["status"] for i in invoices}[action["invoice_id"]] == "paid"

    # Nothing waits any more.
    assert _code(await payments_api.post(confirm, headers=portal)) == (409, "no_pending_action")
    assert _code(
        await payments_api.post(complete, json={"payment_intent_id": intent_id}, headers=portal)
    ) == (409, "no_pending_action")
    final = await payments_api.get(f"/v1/portal/subscriptions/{sid}", headers=portal)
    assert final.json()["pending_action"]["status"] == "confirmed"

    # The client secret went to the portal's response only: no log record carries it.
    assert secret not in caplog.text
    assert secret.split("_secret_")[1] not in caplog.text


@pytest.mark.temporal
@pytest.mark.slow
async def test_an_intent_authenticated_earlier_is_settled_by_confirm_payment(
    payments_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    """The customer passed the bank's check but the page never called ``complete`` (closed,
    network gone): pressing "Confirm payment" again settles it, nothing is charged twice."""
    customer, past_due = await renewal_needing_3ds(payments_api, localstripe_url)
    sid = past_due["id"]
    portal = portal_headers(customer["id"])
    started = (await payments_api.post(CONFIRM.format(id=sid), headers=portal)).json()
    assert started["outcome"] == "requires_action"
    authenticate_on_localstripe(
        localstripe_url, started["payment_intent_id"], started["client_secret"]
    )
    again = await payments_api.post(CONFIRM.format(id=sid), headers=portal)
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["outcome"], body["client_secret"]) == ("paid", None)
    assert body["subscription"]["status"] == "active"
    assert body["subscription"]["pending_action"]["status"] == "confirmed"


@pytest.mark.temporal
async def test_the_workflow_validator_refuses_when_nothing_waits(
    payments_api: httpx.AsyncClient,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
    api_db_url: str,
) -> None:
    """Bypassing the API's pre-check, the workflow's update validators refuse on their own
    with the same codes, and the route maps them to 409."""
    customer = await create_customer(payments_api)
    created = await payments_api.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": "starter-monthly",
            "currency": "EUR",
            "payment_method_id": card_token(localstripe_url),
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    sub = await until(payments_api, created.json()["id"], lambda s: s["status"] == "active")
    assert sub["pending_action"] is None
    engine = make_engine(api_db_url)
    with engine.connect() as conn:
        record = get_subscription(conn, sub["id"])
    engine.dispose()
    assert record is not None
    client = temporal_dev_env.client
    with pytest.raises(ApiError) as begin:
        await service.send_update(
            client=client,
            record=record,
            update="begin_payment_confirmation",
            arg=None,
            result_type=None,
        )
    assert (begin.value.status_code, begin.value.code) == (409, "no_pending_action")
    with pytest.raises(ApiError) as complete:
        await service.send_update(
            client=client,
            record=record,
            update="confirm_payment_completed",
            arg=ConfirmPaymentRequest("pi_x"),
            result_type=None,
        )
    assert (complete.value.status_code, complete.value.code) == (409, "no_pending_action")


# --- offline: Temporal unreachable ---------------------------------------------------------


async def _alices_subscription(settings: Settings, customer_id: str) -> str:
    engine = make_engine(settings.database_url)
    sid = f"sub_pay_{_letters()}"
    with engine.begin() as conn:
        insert_subscription(
            conn,
            SubscriptionRecord(
                id=sid,
                customer_id=customer_id,
                plan_id="pro-monthly",
                currency="EUR",
                workflow_id=f"subscription-{sid}",
                created_at=datetime.now(UTC),
            ),
        )
        assert conn.execute(
            select(subscription_rows.c.id).where(subscription_rows.c.id == sid)
        ).scalar_one()
    engine.dispose()
    return sid


async def test_other_customers_get_404_and_temporal_down_is_503(
    offline_api: httpx.AsyncClient, offline_settings: Settings
) -> None:
    alice = await create_customer(offline_api)
    bob = await create_customer(offline_api, name="Bob")
    sid = await _alices_subscription(offline_settings, alice["id"])
    routes = [
        (CONFIRM.format(id=sid), None),
        (COMPLETE.format(id=sid), {"payment_intent_id": "pi_123"}),
    ]
    for path, body in routes:
        # Ownership is checked before Temporal is asked anything.
        theirs = await offline_api.post(path, json=body, headers=portal_headers(bob["id"]))
        assert _code(theirs) == (404, "subscription_not_found"), path
        mine = await offline_api.post(path, json=body, headers=portal_headers(alice["id"]))
        assert _code(mine) == (503, "temporal_unavailable"), path
        assert int(mine.headers["Retry-After"]) > 0
        assert mine.json()["error"]["message"]
        unknown = await offline_api.post(
            path.replace(sid, "sub_nobody"), json=body, headers=portal_headers(alice["id"])
        )
        assert _code(unknown) == (404, "subscription_not_found")


async def test_malformed_or_unauthenticated_requests_are_refused_offline(
    offline_api: httpx.AsyncClient, offline_settings: Settings
) -> None:
    alice = await create_customer(offline_api)
    sid = await _alices_subscription(offline_settings, alice["id"])
    headers = portal_headers(alice["id"])
    for bad in ({"payment_intent_id": "ch_123"}, {"payment_intent": "pi_123"}, {}):
        response = await offline_api.post(COMPLETE.format(id=sid), json=bad, headers=headers)
        assert _code(response) == (422, "invalid_request"), bad
    for path, body in [
        (CONFIRM.format(id=sid), None),
        (COMPLETE.format(id=sid), {"payment_intent_id": "pi_123"}),
    ]:
        anonymous = await offline_api.post(path, json=body)
        assert _code(anonymous) == (401, "invalid_portal_session")
        server_key = await offline_api.post(path, json=body, headers=AUTH)
        assert _code(server_key) == (401, "invalid_portal_session")


def _letters() -> str:
    """A unique id suffix with no digits: a run of digits can read as a card number."""
    return "".join(random.choices(string.ascii_lowercase, k=20))
