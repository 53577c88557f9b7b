"""``dunwell demo``: a guided tour against a running ``make dev`` stack.

Everything goes through the public HTTP API, as a SaaS backend and its customers would:

1. three customers: a consumer in Germany (19 % VAT), a business in Germany with a VAT
   ID (reverse charge), a consumer in New York;
2. Ada's Starter subscription is backdated to one month ago less a minute, so its first
   renewal fires about a minute after the demo starts: invoice, tax, ledger posting and
   an off-session charge, while you watch;
3. Brandt GmbH subscribes to Pro and upgrades to Business through the portal API: a
   preview (proration and tax), then the change with its prorated invoice;
4. Casey starts a Pro trial in USD.

Cards are the gateway's own test payment methods (``pm_card_visa``), so no card data is
handled here either.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import stripe

from billing.periods import boundary
from dunwell.settings import Settings

RENEWAL_DELAY = timedelta(seconds=60)
RENEWAL_WAIT_SECONDS = 150.0

CUSTOMERS: dict[str, dict[str, Any]] = {
    "ada": {
        "email": "ada@example.test",
        "name": "Ada Lovelace",
        "address": {
            "country": "DE",
            "postal_code": "10115",
            "city": "Berlin",
            "line1": "Invalidenstr. 1",
        },
        "timezone": "Europe/Berlin",
    },
    "brandt": {
        "email": "billing@brandt.example.test",
        "name": "Brandt GmbH",
        "address": {
            "country": "DE",
            "postal_code": "80331",
            "city": "München",
            "line1": "Marienplatz 1",
        },
        # The example VAT ID of the German tax authority's own documentation.
        "tax_id": "DE136695976",
        "timezone": "Europe/Berlin",
    },
    "casey": {
        "email": "casey@example.test",
        "name": "Casey Jones",
        "address": {
            "country": "US",
            "state": "NY",
            "postal_code": "10001",
            "city": "New York",
            "line1": "350 Fifth Avenue",
        },
        "timezone": "America/New_York",
    },
}


class DemoError(RuntimeError):
    """The stack is not up, or an API call failed; the message says which."""


def run_demo(
    settings: Settings,
    *,
    wait_for_renewal: bool = True,
    renewal_in: timedelta = RENEWAL_DELAY,
    echo: Callable[[str], None] = print,
    http: httpx.Client | None = None,
) -> dict[str, str]:
    """Run the tour; returns the subscription ids by customer key."""
    api = http or httpx.Client(
        base_url=settings.public_base_url,
        headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
        timeout=90.0,
    )
    try:
        return _tour(
            settings, api, wait_for_renewal=wait_for_renewal, renewal_in=renewal_in, echo=echo
        )
    finally:
        if http is None:
            api.close()


def _tour(
    settings: Settings,
    api: httpx.Client,
    *,
    wait_for_renewal: bool,
    renewal_in: timedelta,
    echo: Callable[[str], None],
) -> dict[str, str]:
    _check_ready(api)
    ui = f"http://127.0.0.1:{settings.temporal_ui_port}/namespaces/{settings.temporal_namespace}"
    customers = {key: _call(api, "POST", "/v1/customers", body) for key, body in CUSTOMERS.items()}
    for key, customer in customers.items():
        echo(f"customer {customer['id']}: {customer['name']} ({key})")

    now = datetime.now(UTC)
    subscriptions: dict[str, str] = {}
    ada = _call(
        api,
        "POST",
        "/v1/subscriptions",
        {
            "customer_id": customers["ada"]["id"],
            "plan_id": "starter-monthly",
            "currency": "EUR",
            "payment_method_id": _test_card(settings),
            # One month back, less a minute: the first renewal is a minute away.
            "backdate_start_date": (boundary(now, -1) + renewal_in).isoformat(),
        },
    )
    subscriptions["ada"] = ada["id"]
    brandt = _call(
        api,
        "POST",
        "/v1/subscriptions",
        {
            "customer_id": customers["brandt"]["id"],
            "plan_id": "pro-monthly",
            "currency": "EUR",
            "payment_method_id": _test_card(settings),
        },
    )
    subscriptions["brandt"] = brandt["id"]
    casey = _call(
        api,
        "POST",
        "/v1/subscriptions",
        {
            "customer_id": customers["casey"]["id"],
            "plan_id": "pro-monthly",
            "currency": "USD",
            "trial": True,
        },
    )
    subscriptions["casey"] = casey["id"]
    for key, sub_id in subscriptions.items():
        echo(f"subscription {sub_id} ({key}): {ui}/workflows/subscription-{sub_id}")

    _wait(api, brandt["id"], lambda s: s["status"] == "active", 60.0)
    session = _call(api, "POST", "/v1/portal-sessions", {"customer_id": customers["brandt"]["id"]})
    portal = {"Authorization": f"Bearer {session['token']}"}
    base = f"/v1/portal/subscriptions/{brandt['id']}"
    preview = _call(
        api, "POST", f"{base}/preview-change", {"plan_id": "business-monthly"}, headers=portal
    )
    echo(
        f"preview pro → business for Brandt GmbH: {preview['effective']}, "
        f"total {preview['total']} {preview['currency']} minor units "
        f"(tax {preview['tax_total']}; {', '.join(preview['legal_mentions']) or 'no mentions'})"
    )
    changed = _call(
        api, "POST", f"{base}/change-plan", {"plan_id": "business-monthly"}, headers=portal
    )
    echo(f"plan change: {changed['outcome']}, proration invoice {changed['invoice_id']}")

    if wait_for_renewal:
        echo(f"waiting for Ada's first renewal (in {renewal_in.total_seconds():.0f} s) ...")
        renewed = _wait(
            api,
            ada["id"],
            lambda s: any(i["purpose"] == "renewal" for i in s["recent_invoices"]),
            RENEWAL_WAIT_SECONDS,
        )
        renewal = next(i for i in renewed["recent_invoices"] if i["purpose"] == "renewal")
        echo(
            f"renewal invoice {renewal['number']}: {renewal['total']} {renewal['currency']} "
            f"minor units, {renewal['status']}; next period ends {renewed['current_period_end']}"
        )

    echo("")
    echo("Where to look:")
    echo(f"  Temporal UI: {ui}/workflows (filter: DunwellCustomerId or DunwellPlan)")
    echo("  Ledger:      dunwell ledger trial-balance")
    receiver_log = settings.state_dir / "logs" / "demo-receiver.log"
    echo(f"  Events:      tail -f {receiver_log} (signed events as the product receives them)")
    echo("               dunwell events deliveries (each delivery, its attempts and answers)")
    for key, sub_id in subscriptions.items():
        echo(
            f"  Invoices ({key}): GET {settings.public_base_url}/v1/subscriptions/{sub_id}/invoices"
        )
    echo(f"  API docs:    {settings.public_base_url}/docs (offline; ReDoc at /redoc)")
    echo("  Portal links (valid for 15 minutes; open one to act as that customer):")
    for key, customer in customers.items():
        url = (
            session["url"]
            if key == "brandt"
            else _call(api, "POST", "/v1/portal-sessions", {"customer_id": customer["id"]})["url"]
        )
        echo(f"    Portal ({customer['name']}): {url}")
    return subscriptions


def _test_card(settings: Settings) -> str:
    """A card payment method from the gateway's test catalogue (``pm_card_visa``)."""
    client = stripe.StripeClient(
        settings.stripe_api_key.get_secret_value(),
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else {},
    )
    return str(client.v1.payment_methods.retrieve("pm_card_visa").id)


def _check_ready(api: httpx.Client) -> None:
    try:
        ready = api.get("/readyz")
    except httpx.HTTPError as err:
        raise DemoError(
            f"the API is not answering at {api.base_url} ({err}); run `make dev`"
        ) from err
    if ready.status_code != 200:
        raise DemoError(f"the stack is not ready: {ready.text}; is `make dev` running?")


def _call(
    api: httpx.Client,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    *,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    response = api.request(method, path, json=body, headers=headers)
    if response.status_code >= 400:
        raise DemoError(f"{method} {path} → {response.status_code}: {response.text}")
    result: dict[str, Any] = response.json()
    return result


def _wait(
    api: httpx.Client,
    subscription_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = _call(api, "GET", f"/v1/subscriptions/{subscription_id}")
        if predicate(state):
            return state
        if time.monotonic() > deadline:
            raise DemoError(f"subscription {subscription_id} did not get there: {state['status']}")
        time.sleep(0.5)
