"""A past-due subscription in the portal page, in headless Chromium against the real
API, workflow (with dunning and notices), ledger and localstripe: the access and grace
state in words with its date, the decline message with a button to update the card,
and the notifications, dismissed for good."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import expect

from billing.periods import boundary
from tests.api.conftest import AUTH, VISA_OK, customer_body
from tests.e2e.conftest import Stack
from tests.e2e.support import FAILS_WHEN_CHARGED, card, chromium, open_portal, section, until

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

RENEWS_IN = timedelta(seconds=12)


async def test_past_due_shows_grace_decline_and_notifications(payments_stack: Stack) -> None:
    stack = payments_stack
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
        customer = (await http.post("/v1/customers", json=customer_body(), headers=AUTH)).json()
        created = await http.post(
            "/v1/subscriptions",
            json={
                "customer_id": customer["id"],
                "plan_id": "pro-monthly",
                "currency": "EUR",
                "payment_method_id": card(stack, VISA_OK),
                "backdate_start_date": (boundary(datetime.now(UTC), -1) + RENEWS_IN).isoformat(),
            },
            headers=AUTH,
        )
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        await until(http, sid, lambda s: s["status"] == "active", timeout=20)
        session = (
            await http.post(
                "/v1/portal-sessions", json={"customer_id": customer["id"]}, headers=AUTH
            )
        ).json()
        switched = await http.post(
            f"/v1/portal/subscriptions/{sid}/payment-method",
            json={"payment_method_id": card(stack, FAILS_WHEN_CHARGED)},
            headers={"Authorization": f"Bearer {session['token']}"},
        )
        assert switched.status_code == 200, switched.text
        past_due = await until(
            http, sid, lambda s: s["status"] == "past_due" and s["grace_until"] is not None
        )
        portal = {"Authorization": f"Bearer {session['token']}"}
        for _ in range(100):  # the failure notice is written by the dunning run
            notes = (await http.get("/v1/portal/notifications", headers=portal)).json()["items"]
            if notes:
                break
            await until(http, sid, lambda s: True)
        assert notes, "no notification was recorded"

        errors: list[str] = []
        async with chromium() as browser:
            page = await open_portal(browser, session["url"], errors)
            sub = section(page, sid)
            grace = past_due["grace_until"]
            await expect(sub.locator('[data-field="status"]')).to_have_text("past_due")
            await expect(sub.locator('[data-field="access"]')).to_have_text(
                f"Payment overdue. Your access continues until {grace[:10]} {grace[11:16]} UTC "
                "while we retry the payment."
            )
            banner = sub.locator('[data-field="problem-banner"]')
            await expect(banner).to_be_visible()
            message = past_due["payment_problem"]["message"]
            assert message.startswith("Your card was declined")
            await expect(banner).to_contain_text(message)
            await expect(banner).to_contain_text(re.compile(r"Amount due: \d+\.\d\d EUR"))
            await expect(banner).to_have_attribute("data-decline-code", "card_declined")
            items = page.locator("#notifications li")
            await expect(items).to_have_count(len(notes))
            await expect(items.first).to_contain_text(notes[0]["subject"])
            await page.screenshot(path=str(stack.screenshots / "past-due.png"), full_page=True)

            # The banner's button opens the gateway's card form.
            await banner.locator('[data-action="problem-update-card"]').click()
            await expect(
                sub.locator('[data-field="card-mount"] input[placeholder="number"]')
            ).to_be_visible()

            # Dismissed: gone at once, and still gone when the portal is opened again.
            await items.first.get_by_role("button", name=re.compile("^Dismiss")).click()
            await expect(items).to_have_count(len(notes) - 1)
            again = await open_portal(browser, session["url"], errors)
            await expect(again.locator("#notifications li")).to_have_count(len(notes) - 1)
            assert errors == []
