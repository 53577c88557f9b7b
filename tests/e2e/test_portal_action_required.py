"""A renewal the bank wants confirmed (3-D Secure), in the portal page in headless Chromium
against the real API, workflow and localstripe: the card on file as "Visa •••• 4242
(12/2030)", the "Action required" banner, and "Confirm payment" through Stripe.js's
``confirmCardPayment``, once failed at the bank's dialog and once passed."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from playwright.async_api import Page, async_playwright, expect

from billing.periods import boundary
from tests.api.conftest import AUTH, STRIPE_KEY, VISA_OK, customer_body
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Stack

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

REQUIRES_3DS = "4000002500003155"
RENEWS_IN = timedelta(seconds=15)


def _card(stack: Stack, number: str) -> str:
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stack.localstripe_url})
    card = {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    return str(gateway.v1.payment_methods.create(params={"type": "card", "card": card}).id)


async def _read(http: httpx.AsyncClient, subscription_id: str) -> dict[str, Any]:
    response = await http.get(f"/v1/subscriptions/{subscription_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _until(
    http: httpx.AsyncClient, subscription_id: str, ok: Any, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        sub = await _read(http, subscription_id)
        if ok(sub):
            return sub
        if time.monotonic() > deadline:
            raise AssertionError(f"never reached; last: {sub}")
        await asyncio.sleep(0.2)


async def _renewal_needing_3ds(
    stack: Stack, http: httpx.AsyncClient, customer: dict[str, Any], portal_token: str
) -> str:
    """A pro-monthly subscription paid once that renews seconds later on a 3-D Secure
    card; returns its id once its payment waits for the customer."""
    start = boundary(datetime.now(UTC), -1) + RENEWS_IN
    created = await http.post(
        "/v1/subscriptions",
        json={
            "customer_id": customer["id"],
            "plan_id": "pro-monthly",
            "currency": "EUR",
            "payment_method_id": _card(stack, VISA_OK),
            "backdate_start_date": start.isoformat(),
        },
    )
    assert created.status_code == 201, created.text
    sid: str = created.json()["id"]
    active = await _until(http, sid, lambda s: s["status"] == "active", timeout=20.0)
    switched = await http.post(
        f"/v1/portal/subscriptions/{sid}/payment-method",
        json={"payment_method_id": _card(stack, REQUIRES_3DS)},
        headers={"Authorization": f"Bearer {portal_token}"},
    )
    assert switched.status_code == 200, switched.text
    assert datetime.now(UTC) < datetime.fromisoformat(active["current_period_end"]), "too late"
    await _until(
        http,
        sid,
        lambda s: s["pending_action"] is not None and s["pending_action"]["status"] == "waiting",
    )
    return sid


async def _wait_ready(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=20_000)


async def test_action_required_is_confirmed_in_the_portal_page(
    payments_stack: Stack, tmp_path: Path
) -> None:
    stack = payments_stack
    first_request = len(stack.recorder.seen)
    async with httpx.AsyncClient(base_url=stack.base_url, headers=AUTH, timeout=90) as http:
        customer = (await http.post("/v1/customers", json=customer_body())).json()
        session = (
            await http.post("/v1/portal-sessions", json={"customer_id": customer["id"]})
        ).json()
        declined, confirmed = await asyncio.gather(
            _renewal_needing_3ds(stack, http, customer, session["token"]),
            _renewal_needing_3ds(stack, http, customer, session["token"]),
        )
        amount = (await _read(http, confirmed))["pending_action"]["amount"]

        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                await page.goto(session["url"])
                await _wait_ready(page)
                first = page.locator(f'section[data-subscription-id="{declined}"]')
                second = page.locator(f'section[data-subscription-id="{confirmed}"]')
                for section in (first, second):
                    await expect(section.locator('[data-field="card"]')).to_have_text(
                        "Visa •••• 3155 (12/2031)"
                    )
                    await expect(section.locator('[data-field="status"]')).to_have_text("past_due")
                    banner = section.locator('[data-field="action-banner"]')
                    await expect(banner).to_be_visible()
                    await expect(banner).to_contain_text("Action required")
                    await expect(banner).to_contain_text(re.compile(r"\d+\.\d\d EUR"))
                await expect(second.locator('[data-field="action-text"]')).to_contain_text(
                    f"{amount // 100}.{amount % 100:02d} EUR"
                )
                await page.screenshot(path=str(tmp_path / "action-required.png"), full_page=True)

                # The customer fails the bank's check: a clear error, the banner stays.
                await first.locator('[data-action="confirm-payment"]').click()
                fail = page.get_by_role("button", name="Fail authentication")
                await expect(fail).to_be_visible(timeout=20_000)
                await fail.click()
                error = first.locator('[data-field="action-error"]')
                await expect(error).to_be_visible(timeout=20_000)
                await expect(error).to_contain_text("The payment was not confirmed")
                await expect(first.locator('[data-field="action-banner"]')).to_be_visible()
                assert stack.recorder.json_bodies("/confirm-payment/complete", first_request) == []

                # The customer passes it: the invoice is paid and the banner goes away.
                await second.locator('[data-action="confirm-payment"]').click()
                complete = page.get_by_role("button", name="Complete authentication")
                await expect(complete).to_be_visible(timeout=20_000)
                await complete.click()
                await expect(page.locator("#message")).to_have_text(
                    "Payment confirmed. Thank you!", timeout=30_000
                )
                await expect(second.locator('[data-field="action-banner"]')).to_be_hidden()
                await expect(second.locator('[data-field="status"]')).to_have_text("active")
                await expect(first.locator('[data-field="action-banner"]')).to_be_visible()
                # Two first invoices and the confirmed renewal are paid; one renewal is open.
                statuses = page.locator("#invoices tbody tr td:nth-child(3)")
                await expect(statuses).to_have_count(4)
                assert sorted(await statuses.all_inner_texts()) == ["open", "paid", "paid", "paid"]
                await page.screenshot(path=str(tmp_path / "confirmed.png"), full_page=True)
                assert errors == []
            finally:
                await browser.close()

        after = await _read(http, confirmed)
        assert after["status"] == "active"
        assert after["pending_action"]["status"] == "confirmed"
        assert after["recent_invoices"][-1]["status"] == "paid"
        still = await _read(http, declined)
        assert (still["status"], still["pending_action"]["status"]) == ("past_due", "waiting")

    # Our API received the payment intent's id only: no card data, no client secret.
    (complete_body,) = stack.recorder.json_bodies("/confirm-payment/complete", first_request)
    assert set(complete_body) == {"payment_intent_id"}
    assert re.fullmatch(r"pi_\w+", complete_body["payment_intent_id"])
    assert "_secret_" not in complete_body["payment_intent_id"]
    for _method, _path, body in stack.recorder.seen[first_request:]:
        assert REQUIRES_3DS.encode() not in body and VISA_OK.encode() not in body
        assert b"_secret_" not in body
    assert (tmp_path / "confirmed.png").stat().st_size > 10_000
