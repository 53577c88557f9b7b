"""Server and portal API paths that need no Temporal: customers, portal sessions,
authorization, validation, and the 503s when Temporal is unreachable."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta

import httpx
import stripe
from sqlalchemy import func, select

from api.portal_tokens import verify_portal_token
from dunwell.settings import Settings
from ledger.db import make_engine
from stores.customers import SubscriptionRecord, insert_subscription
from stores.tables import subscriptions
from tests.api.conftest import (
    AUTH,
    SESSION_SECRET,
    STRIPE_KEY,
    card_token,
    create_customer,
    customer_body,
    portal_headers,
)


async def test_customer_is_created_with_its_gateway_customer(
    offline_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    created = await create_customer(offline_api, tax_id="DE136695976")
    assert created["id"].startswith("cust_")
    assert created["address"]["country"] == "DE"
    assert created["tax_id"] == "DE136695976"
    assert created["segment"] == "default"
    read = await offline_api.get(f"/v1/customers/{created['id']}", headers=AUTH)
    assert read.status_code == 200
    assert read.json() == created
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe_url})
    remote = gateway.v1.customers.retrieve(created["gateway_customer_id"])
    assert remote.email == "ada@example.test"
    assert remote.metadata["dunwell_customer_id"] == created["id"]


async def test_customer_creation_is_idempotent_by_key(offline_api: httpx.AsyncClient) -> None:
    headers = {**AUTH, "Idempotency-Key": f"cust-{datetime.now(UTC).timestamp()}"}
    first = await offline_api.post("/v1/customers", json=customer_body(), headers=headers)
    again = await offline_api.post("/v1/customers", json=customer_body(), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await offline_api.post(
        "/v1/customers", json=customer_body(name="Someone Else"), headers=headers
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_a_customer_segment_is_kept_and_shown(offline_api: httpx.AsyncClient) -> None:
    created = await create_customer(offline_api, segment="enterprise")
    assert created["segment"] == "enterprise"
    read = await offline_api.get(f"/v1/customers/{created['id']}", headers=AUTH)
    assert read.json()["segment"] == "enterprise"


async def test_malformed_customers_are_422(offline_api: httpx.AsyncClient) -> None:
    bad_bodies = [
        customer_body(country="Germany"),
        customer_body(email="not-an-email"),
        customer_body(timezone="Mars/Olympus"),
        customer_body(segment="enterprize"),
        customer_body(nickname="extra fields are refused"),
        {"email": "a@b.test"},
    ]
    for body in bad_bodies:
        response = await offline_api.post("/v1/customers", json=body, headers=AUTH)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"
    bad_vat = await offline_api.post(
        "/v1/customers", json=customer_body(tax_id="DE000"), headers=AUTH
    )
    assert bad_vat.status_code == 422
    assert bad_vat.json()["error"]["code"] == "invalid_tax_id"


async def test_server_api_needs_the_api_key(offline_api: httpx.AsyncClient) -> None:
    for method, path in [
        ("POST", "/v1/customers"),
        ("GET", "/v1/customers/cust_x"),
        ("POST", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions/sub_x"),
        ("GET", "/v1/subscriptions/sub_x/invoices"),
        ("POST", "/v1/portal-sessions"),
    ]:
        response = await offline_api.request(
            method, path, json={}, headers={"Authorization": "Bearer wrong"}
        )
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_objects_are_404(offline_api: httpx.AsyncClient) -> None:
    for path in ["/v1/customers/cust_nobody", "/v1/subscriptions/sub_nothing/invoices"]:
        response = await offline_api.get(path, headers=AUTH)
        assert response.status_code == 404, path
    session = await offline_api.post(
        "/v1/portal-sessions", json={"customer_id": "cust_nobody"}, headers=AUTH
    )
    assert session.status_code == 404
    assert session.json()["error"]["code"] == "customer_not_found"


async def test_portal_session_is_a_short_lived_token_for_one_customer(
    offline_api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(offline_api)
    before = datetime.now(UTC)
    response = await offline_api.post(
        "/v1/portal-sessions", json={"customer_id": customer["id"]}, headers=AUTH
    )
    assert response.status_code == 201
    body = response.json()
    claims = verify_portal_token(body["token"], secret=SESSION_SECRET, now=datetime.now(UTC))
    assert claims.customer_id == customer["id"]
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(minutes=14) < expires <= before + timedelta(minutes=16)
    assert body["url"].startswith("http://portal.test/portal?session=")
    me = await offline_api.get(
        "/v1/portal/session", headers={"Authorization": f"Bearer {body['token']}"}
    )
    assert me.status_code == 200
    assert me.json()["customer_id"] == customer["id"]
    assert {p["id"] for p in me.json()["plans"]} >= {"starter-monthly", "pro-monthly"}


def ago(**delta: float) -> str:
    return (datetime.now(UTC) - timedelta(**delta)).isoformat()


async def test_subscription_input_is_checked_before_temporal(
    offline_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer = await create_customer(offline_api)
    base = {"customer_id": customer["id"], "plan_id": "pro-monthly", "currency": "EUR"}
    cases = [
        ({**base, "plan_id": "platinum-monthly", "trial": True}, 422, "unknown_plan"),
        ({**base, "currency": "CHF", "trial": True}, 422, "unknown_price"),
        ({**base, "currency": "EURO", "trial": True}, 422, "invalid_request"),
        ({**base, "plan_id": "starter-monthly", "trial": True}, 422, "trial_unavailable"),
        (base, 422, "payment_method_required"),
        ({**base, "payment_method_id": "card_123"}, 422, "invalid_request"),
        ({**base, "customer_id": "cust_nobody", "trial": True}, 404, "customer_not_found"),
        ({**base, "trial": True, "backdate_start_date": ago(days=40)}, 422, "invalid_backdate"),
        ({**base, "trial": True, "backdate_start_date": ago(days=-1)}, 422, "invalid_backdate"),
        (
            {**base, "trial": True, "backdate_start_date": "2026-01-01T00:00:00"},
            422,
            "invalid_request",
        ),
    ]
    for body, status, code in cases:
        response = await offline_api.post("/v1/subscriptions", json=body, headers=AUTH)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["code"] == code, body


async def test_temporal_unreachable_is_503_and_nothing_is_written(
    offline_api: httpx.AsyncClient, offline_settings: Settings, localstripe_url: str
) -> None:
    customer = await create_customer(offline_api)
    engine = make_engine(offline_settings.database_url)
    count = select(func.count()).select_from(subscriptions)
    with engine.connect() as conn:
        before = conn.execute(count).scalar_one()
    response = await offline_api.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": "pro-monthly",
            "currency": "EUR",
            "payment_method_id": card_token(localstripe_url),
        },
        headers=AUTH,
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "temporal_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    with engine.connect() as conn:
        assert conn.execute(count).scalar_one() == before
    engine.dispose()


async def test_portal_needs_a_valid_unexpired_session(
    offline_api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(offline_api)
    expired = portal_headers(customer["id"], now=datetime.now(UTC) - timedelta(minutes=16))
    valid = portal_headers(customer["id"])
    forged = {"Authorization": valid["Authorization"][:-2] + "AA"}
    for headers in [{}, expired, forged, {"Authorization": "Bearer nonsense"}, AUTH]:
        response = await offline_api.get("/v1/portal/subscriptions", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"]["code"] == "invalid_portal_session"
        assert response.headers["WWW-Authenticate"] == "Bearer"
    ok = await offline_api.get("/v1/portal/invoices", headers=valid)
    assert ok.status_code == 200
    assert ok.json() == {"items": []}


PORTAL_ROUTES = [
    ("GET", "/v1/portal/subscriptions/{id}", None),
    ("POST", "/v1/portal/subscriptions/{id}/preview-change", {"plan_id": "business-monthly"}),
    ("POST", "/v1/portal/subscriptions/{id}/change-plan", {"plan_id": "business-monthly"}),
    ("POST", "/v1/portal/subscriptions/{id}/cancel", None),
    ("POST", "/v1/portal/subscriptions/{id}/undo-cancel", None),
    ("POST", "/v1/portal/subscriptions/{id}/payment-method/setup-intent", None),
    ("POST", "/v1/portal/subscriptions/{id}/payment-method", {"payment_method_id": "pm_x"}),
]


async def test_another_customers_subscription_is_404_on_every_portal_route(
    offline_api: httpx.AsyncClient, offline_settings: Settings
) -> None:
    """Ownership is checked before Temporal is asked anything: B learns nothing of A's
    subscription, not even whether the workflow engine is up."""
    alice = await create_customer(offline_api)
    bob = await create_customer(offline_api, name="Bob")
    engine = make_engine(offline_settings.database_url)
    with engine.begin() as conn:
        insert_subscription(
            conn,
            SubscriptionRecord(
                id=f"sub_alice_{_letters()}",
                customer_id=alice["id"],
                plan_id="pro-monthly",
                currency="EUR",
                workflow_id=f"subscription-alice-{alice['id']}",
                created_at=datetime.now(UTC),
            ),
        )
        (alice_sub,) = [
            row.id
            for row in conn.execute(
                select(subscriptions.c.id).where(subscriptions.c.customer_id == alice["id"])
            )
        ]
    engine.dispose()
    bob_headers = portal_headers(bob["id"])
    for method, template, body in PORTAL_ROUTES:
        path = template.format(id=alice_sub)
        response = await offline_api.request(method, path, json=body, headers=bob_headers)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"]["code"] == "subscription_not_found"
        # Alice gets past the ownership check (and then meets the unreachable Temporal).
        mine = await offline_api.request(
            method, path, json=body, headers=portal_headers(alice["id"])
        )
        assert mine.status_code == 503, (path, mine.text)
    listing = await offline_api.get("/v1/portal/subscriptions", headers=bob_headers)
    assert listing.status_code == 200
    assert listing.json() == {"items": []}


async def test_card_numbers_are_refused_before_any_route(
    offline_api: httpx.AsyncClient,
) -> None:
    customer = await create_customer(offline_api)
    headers = portal_headers(customer["id"])
    response = await offline_api.post(
        "/v1/portal/subscriptions/sub_x/payment-method",
        json={"payment_method_id": "4242424242424242"},
        headers=headers,
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "card_data_refused"
    pm_shaped = await offline_api.post(
        "/v1/portal/subscriptions/sub_x/payment-method",
        json={"payment_method_id": "pm_4242424242424242"},
        headers=headers,
    )
    assert pm_shaped.status_code == 400


def _letters() -> str:
    """A unique id suffix with no digits: a run of digits can read as a card number."""
    return "".join(random.choices(string.ascii_lowercase, k=20))
