"""Subscriptions through the API against the real workflow: Temporal dev server, worker,
PostgreSQL, localstripe."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import stripe
from temporalio.testing import WorkflowEnvironment

from api.errors import ApiError
from api.services import subscriptions as service
from billing.periods import boundary
from ledger.db import make_engine
from stores.customers import get_subscription, list_subscriptions
from tests.api.conftest import (
    AUTH,
    STRIPE_KEY,
    card_token,
    create_customer,
    portal_headers,
    until,
)

pytestmark = pytest.mark.temporal


async def subscribe(
    http: httpx.AsyncClient,
    localstripe_url: str,
    *,
    plan_id: str = "starter-monthly",
    country: str = "DE",
    trial: bool = False,
    customer: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = customer or await create_customer(http, country=country)
    body: dict[str, Any] = {"customer_id": customer["id"], "plan_id": plan_id, "currency": "EUR"}
    if trial:
        body["trial"] = True
    else:
        body["payment_method_id"] = card_token(localstripe_url)
    response = await http.post("/v1/subscriptions", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    created = response.json()
    want = "trialing" if trial else "active"
    return customer, await until(http, created["id"], lambda s: s["status"] == want)


async def test_a_subscription_starts_and_its_first_invoice_is_paid(
    live_api: httpx.AsyncClient, localstripe_url: str, temporal_dev_env: WorkflowEnvironment
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url)
    assert sub["workflow_id"] == f"subscription-{sub['id']}"
    assert sub["customer_id"] == customer["id"]
    assert [t["to_status"] for t in sub["transitions"]] == ["active"]
    invoices = await live_api.get(f"/v1/subscriptions/{sub['id']}/invoices", headers=AUTH)
    assert invoices.status_code == 200
    (invoice,) = invoices.json()["items"]
    # starter-monthly is EUR 9.00; a consumer in Germany pays 19 % VAT (OSS).
    assert (invoice["subtotal"], invoice["tax_total"], invoice["total"]) == (900, 171, 1071)
    assert invoice["status"] == "paid"
    description = await temporal_dev_env.client.get_workflow_handle(sub["workflow_id"]).describe()
    assert description.typed_search_attributes  # customer id and plan are set at start
    assert sub["id"] in (await description.static_summary() or "")


async def test_subscription_creation_is_idempotent_by_key(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer = await create_customer(live_api)
    body = {
        "customer_id": customer["id"],
        "plan_id": "pro-monthly",
        "currency": "EUR",
        "trial": True,
    }
    headers = {**AUTH, "Idempotency-Key": uuid.uuid4().hex}
    first = await live_api.post("/v1/subscriptions", json=body, headers=headers)
    again = await live_api.post("/v1/subscriptions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    changed = await live_api.post(
        "/v1/subscriptions", json={**body, "plan_id": "pro-yearly"}, headers=headers
    )
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "idempotency_key_reused"


async def test_preview_shows_proration_and_tax_and_writes_nothing(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url)
    portal = portal_headers(customer["id"])
    base = f"/v1/portal/subscriptions/{sub['id']}"
    before = (await live_api.get("/v1/portal/invoices", headers=portal)).json()["items"]

    preview = await live_api.post(
        f"{base}/preview-change", json={"plan_id": "business-monthly"}, headers=portal
    )
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert (body["kind"], body["effective"]) == ("upgrade", "immediately")
    credit, charge = body["lines"]
    assert credit["kind"] == "credit" and credit["amount"] < 0
    assert charge["kind"] == "charge" and charge["amount"] > 0
    # Nearly the whole month remains: about -9.00 and +99.00 before tax.
    assert -900 <= credit["amount"] <= -890 and 9790 <= charge["amount"] <= 9900
    for line in (credit, charge):
        (component,) = line["tax"]
        assert (component["jurisdiction"], component["rate_ppm"]) == ("DE", 190_000)
        assert line["amount_including_tax"] == line["amount_excluding_tax"] + line["tax_amount"]
    assert body["tax_total"] == credit["tax_amount"] + charge["tax_amount"]
    assert body["total"] == body["subtotal"] + body["tax_total"]

    after = (await live_api.get("/v1/portal/invoices", headers=portal)).json()["items"]
    assert after == before
    unchanged = await live_api.get(base, headers=portal)
    assert unchanged.json()["plan_id"] == "starter-monthly"
    assert unchanged.json()["plan_changes"] == []

    changed = await live_api.post(
        f"{base}/change-plan", json={"plan_id": "business-monthly"}, headers=portal
    )
    assert changed.status_code == 200, changed.text
    result = changed.json()
    assert result["outcome"] == "applied"
    assert result["subscription"]["plan_id"] == "business-monthly"
    invoices = (await live_api.get("/v1/portal/invoices", headers=portal)).json()["items"]
    proration = next(i for i in invoices if i["id"] == result["invoice_id"])
    # The invoice is computed a moment later than the preview: to the second, the same.
    assert abs(proration["total"] - body["total"]) <= 2
    assert proration["tax_total"] > 0

    again = await live_api.post(
        f"{base}/preview-change", json={"plan_id": "business-monthly"}, headers=portal
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "plan_unchanged"
    down = await live_api.post(
        f"{base}/preview-change", json={"plan_id": "starter-monthly"}, headers=portal
    )
    assert down.status_code == 200
    assert (down.json()["kind"], down.json()["effective"]) == ("downgrade", "period_end")
    (next_period,) = down.json()["lines"]
    assert (next_period["amount"], next_period["tax_amount"]) == (900, 171)


async def test_plan_change_refusals(live_api: httpx.AsyncClient, localstripe_url: str) -> None:
    customer, sub = await subscribe(live_api, localstripe_url)
    portal = portal_headers(customer["id"])
    base = f"/v1/portal/subscriptions/{sub['id']}"
    for route in ("preview-change", "change-plan"):
        unknown = await live_api.post(
            f"{base}/{route}", json={"plan_id": "platinum-monthly"}, headers=portal
        )
        assert unknown.status_code == 422
        assert unknown.json()["error"]["code"] == "unknown_plan"
        malformed = await live_api.post(f"{base}/{route}", json={"plan": "x"}, headers=portal)
        assert malformed.status_code == 422
        assert malformed.json()["error"]["code"] == "invalid_request"
    # A yearly plan waits for the period boundary (never two cycles in one period).
    yearly = await live_api.post(
        f"{base}/preview-change", json={"plan_id": "business-yearly"}, headers=portal
    )
    assert yearly.status_code == 200
    assert yearly.json()["effective"] == "period_end"


async def test_cancel_at_period_end_and_undo(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url)
    portal = portal_headers(customer["id"])
    base = f"/v1/portal/subscriptions/{sub['id']}"

    canceled = await live_api.post(f"{base}/cancel", headers=portal)
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["cancel_at_period_end"] is True
    assert canceled.json()["access_until"] == sub["current_period_end"].replace("+00:00", "Z")
    assert canceled.json()["subscription"]["status"] == "active"

    twice = await live_api.post(f"{base}/cancel", headers=portal)
    assert (twice.status_code, twice.json()["error"]["code"]) == (409, "already_canceling")
    change = await live_api.post(
        f"{base}/change-plan", json={"plan_id": "business-monthly"}, headers=portal
    )
    assert (change.status_code, change.json()["error"]["code"]) == (409, "cancellation_pending")

    undone = await live_api.post(f"{base}/undo-cancel", headers=portal)
    assert undone.status_code == 200
    assert undone.json()["subscription"]["cancel_at_period_end"] is False
    again = await live_api.post(f"{base}/undo-cancel", headers=portal)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "not_canceling")


async def test_a_rejection_by_the_update_validator_is_409_with_its_reason(
    live_api: httpx.AsyncClient,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
    api_db_url: str,
) -> None:
    """Bypassing the API's pre-check, the workflow's validator refuses on its own."""
    _customer, sub = await subscribe(live_api, localstripe_url)
    engine = make_engine(api_db_url)
    with engine.connect() as conn:
        record = get_subscription(conn, sub["id"])
    engine.dispose()
    assert record is not None
    client = temporal_dev_env.client
    await service.send_update(
        client=client, record=record, update="cancel_at_period_end", arg=None, result_type=None
    )
    with pytest.raises(ApiError) as refused:
        await service.send_update(
            client=client, record=record, update="cancel_at_period_end", arg=None, result_type=None
        )
    assert (refused.value.status_code, refused.value.code) == (409, "already_canceling")
    history = await client.get_workflow_handle(record.workflow_id).fetch_history()
    accepted = [
        e
        for e in history.events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    ]
    assert len(accepted) == 1  # the refused update never reached history


async def test_payment_method_tokens_only_and_only_the_customers_own(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url)
    portal = portal_headers(customer["id"])
    base = f"/v1/portal/subscriptions/{sub['id']}"

    intent = await live_api.post(f"{base}/payment-method/setup-intent", headers=portal)
    assert intent.status_code == 200, intent.text
    assert intent.json()["client_secret"].startswith("seti_")
    assert intent.json()["three_d_secure"] == "any"  # Germany: EEA, SCA up front
    assert intent.json()["stripe_js_url"] == f"{localstripe_url}/js.stripe.com/v3/"

    token = card_token(localstripe_url)
    saved = await live_api.post(
        f"{base}/payment-method", json={"payment_method_id": token}, headers=portal
    )
    assert saved.status_code == 200, saved.text
    assert saved.json()["last4"] == "4242"
    assert saved.json()["subscription"]["payment_method_id"] == token
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe_url})
    remote = gateway.v1.customers.retrieve(customer["gateway_customer_id"])
    assert remote.invoice_settings.default_payment_method == token

    # Someone else's card: attached to another gateway customer.
    other, _ = await subscribe(live_api, localstripe_url)
    others_card = card_token(localstripe_url)
    other_headers = portal_headers(other["id"])
    other_sub = (await live_api.get("/v1/portal/subscriptions", headers=other_headers)).json()
    await live_api.post(
        f"/v1/portal/subscriptions/{other_sub['items'][0]['id']}/payment-method",
        json={"payment_method_id": others_card},
        headers=other_headers,
    )
    for pm in (others_card, "pm_doesnotexist"):
        refused = await live_api.post(
            f"{base}/payment-method", json={"payment_method_id": pm}, headers=portal
        )
        assert refused.status_code == 422, pm
        assert refused.json()["error"]["code"] == "invalid_payment_method"


async def test_us_customers_get_3ds_only_when_needed(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer = await create_customer(
        live_api,
        address={
            "country": "US",
            "state": "NY",
            "postal_code": "10001",
            "city": "New York",
            "line1": "1 Main St",
        },
    )
    customer, sub = await subscribe(live_api, localstripe_url, customer=customer)
    intent = await live_api.post(
        f"/v1/portal/subscriptions/{sub['id']}/payment-method/setup-intent",
        headers=portal_headers(customer["id"]),
    )
    assert intent.json()["three_d_secure"] == "automatic"


async def test_trial_plan_change_swaps_without_charge(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url, plan_id="pro-monthly", trial=True)
    portal = portal_headers(customer["id"])
    preview = await live_api.post(
        f"/v1/portal/subscriptions/{sub['id']}/preview-change",
        json={"plan_id": "business-monthly"},
        headers=portal,
    )
    assert preview.status_code == 200
    assert (preview.json()["effective"], preview.json()["total"]) == ("trial_swap", 0)


async def test_customers_see_only_their_own_subscriptions(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    alice, alice_sub = await subscribe(live_api, localstripe_url)
    bob, bob_sub = await subscribe(live_api, localstripe_url)
    mine = await live_api.get("/v1/portal/subscriptions", headers=portal_headers(alice["id"]))
    assert [s["id"] for s in mine.json()["items"]] == [alice_sub["id"]]
    bobs = portal_headers(bob["id"])
    peek = await live_api.get(f"/v1/portal/subscriptions/{alice_sub['id']}", headers=bobs)
    assert peek.status_code == 404
    touch = await live_api.post(f"/v1/portal/subscriptions/{alice_sub['id']}/cancel", headers=bobs)
    assert touch.status_code == 404
    invoices = (await live_api.get("/v1/portal/invoices", headers=bobs)).json()["items"]
    assert {i["subscription_id"] for i in invoices} == {bob_sub["id"]}
    still = await live_api.get(f"/v1/subscriptions/{alice_sub['id']}", headers=AUTH)
    assert still.json()["cancel_at_period_end"] is False


async def test_a_backdated_subscription_renews_at_its_backdated_period_end(
    live_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    customer = await create_customer(live_api)
    now = datetime.now(UTC)
    start = boundary(now, -1) + timedelta(seconds=8)  # the first period ends in 8 s
    response = await live_api.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": "starter-monthly",
            "currency": "EUR",
            "payment_method_id": card_token(localstripe_url),
            "backdate_start_date": start.isoformat(),
        },
        headers=AUTH,
    )
    assert response.status_code == 201, response.text
    renewed = await until(
        live_api,
        response.json()["id"],
        # The status is active before the renewal too: wait for the renewal's payment.
        lambda s: (
            [i["status"] for i in s["recent_invoices"]] == ["paid", "paid"]
            and s["status"] == "active"
        ),
        timeout=60.0,
    )
    first, second = renewed["recent_invoices"]
    assert (first["purpose"], second["purpose"]) == ("first", "renewal")
    assert datetime.fromisoformat(renewed["current_period_start"]) > now
    invoices = await live_api.get(f"/v1/subscriptions/{renewed['id']}/invoices", headers=AUTH)
    assert [i["status"] for i in invoices.json()["items"]] == ["paid", "paid"]


async def test_an_unusable_card_token_is_422_and_starts_nothing(
    live_api: httpx.AsyncClient, api_db_url: str
) -> None:
    customer = await create_customer(live_api)
    response = await live_api.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": "starter-monthly",
            "currency": "EUR",
            "payment_method_id": "pm_doesnotexist",
        },
        headers=AUTH,
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_payment_method"
    engine = make_engine(api_db_url)
    with engine.connect() as conn:
        assert list_subscriptions(conn, customer["id"]) == []
    engine.dispose()


async def test_the_workflow_summary_and_details_name_ids_not_people(
    live_api: httpx.AsyncClient,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
    api_db_url: str,
) -> None:
    customer, sub = await subscribe(live_api, localstripe_url)
    engine = make_engine(api_db_url)
    with engine.connect() as conn:
        record = get_subscription(conn, sub["id"])
    engine.dispose()
    assert record is not None
    described = await temporal_dev_env.client.get_workflow_handle(record.workflow_id).describe()
    summary, details = await described.static_summary(), await described.static_details()
    assert summary is not None and details is not None
    assert sub["id"] in summary and customer["id"] in summary and customer["id"] in details
    for personal in (customer["email"], customer["name"], "Lovelace"):
        assert personal not in summary and personal not in details
