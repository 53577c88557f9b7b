"""An upgrade the bank wants confirmed, in the portal page in headless Chromium against
the real API, workflow and localstripe: Stripe.js's ``confirmCardPayment`` runs the
bank's check (localstripe's fake 3-D Secure dialog); passed, the plan changes; failed,
the change is rolled back, nothing is charged and no review is opened."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Stack
from tests.e2e.support import REQUIRES_3DS, chromium, open_portal, read, section, subscriber

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


async def test_upgrade_with_3ds_passed_and_failed(e2e_stack: Stack) -> None:
    first_request = len(e2e_stack.recorder.seen)
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=90) as http:
        passed, url, _ = await subscriber(
            e2e_stack, http, plan_id="pro-monthly", later_card=REQUIRES_3DS
        )
        errors: list[str] = []
        async with chromium() as browser:
            page = await open_portal(browser, url, errors)
            sub = section(page, passed)
            await sub.locator('[data-field="plan-select"]').select_option("business-monthly")
            await sub.locator('[data-action="preview"]').click()
            await expect(sub.locator('[data-field="preview"]')).to_be_visible()
            await sub.locator('[data-action="confirm-change"]').click()
            await expect(sub.locator('[data-field="plan"]')).to_have_text(
                "Business (monthly)pending"
            )
            complete = page.get_by_role("button", name="Complete authentication")
            await expect(complete).to_be_visible(timeout=20_000)
            await expect(sub.locator('[data-field="pending-line"]')).to_contain_text(
                "waiting for your bank to confirm the payment of"
            )
            await page.screenshot(path=str(e2e_stack.screenshots / "upgrade-3ds-challenge.png"))
            await complete.click()
            await expect(page.locator("#message")).to_have_text(
                "Plan change applied.", timeout=30_000
            )
            await expect(sub.locator('[data-field="plan"]')).to_have_text("Business (monthly)")
            await expect(page.locator("#invoices tbody tr")).to_have_count(2)
            assert errors == []

        after = await read(http, passed)
        assert after["plan_id"] == "business-monthly"
        assert [i["status"] for i in after["recent_invoices"]] == ["paid", "paid"]

        failed, url, _ = await subscriber(
            e2e_stack, http, plan_id="pro-monthly", later_card=REQUIRES_3DS
        )
        async with chromium() as browser:
            page = await open_portal(browser, url, errors)
            sub = section(page, failed)
            await sub.locator('[data-field="plan-select"]').select_option("business-monthly")
            await sub.locator('[data-action="preview"]').click()
            await sub.locator('[data-action="confirm-change"]').click()
            fail = page.get_by_role("button", name="Fail authentication")
            await expect(fail).to_be_visible(timeout=20_000)
            await fail.click()
            message = page.locator("#message")
            await expect(message).to_contain_text(
                "Your bank did not confirm the payment, so your plan was not changed",
                timeout=30_000,
            )
            await expect(message).to_contain_text("Nothing was charged.")
            await expect(sub.locator('[data-field="plan"]')).to_have_text("Pro (monthly)")
            await expect(sub).to_have_attribute("data-pending", "false")
            await expect(page.locator("#credit-notes tbody tr")).to_have_count(1)
            await page.screenshot(
                path=str(e2e_stack.screenshots / "upgrade-3ds-failed.png"), full_page=True
            )
            assert errors == []

        reverted = await read(http, failed)
        change = reverted["plan_changes"][-1]
        assert (change["outcome"], change["reason"]) == ("reverted", "authentication_failed")
        assert reverted["plan_id"] == "pro-monthly"

    # What our API received: payment intent ids and Stripe.js's verdict, never a secret.
    reports = e2e_stack.recorder.json_bodies("/change-plan/authentication", first_request)
    assert [r["outcome"] for r in reports] == ["succeeded", "failed"]
    for report in reports:
        assert set(report) == {"payment_intent_id", "outcome"}
        assert re.fullmatch(r"pi_\w+", report["payment_intent_id"])
    for _method, _path, body in e2e_stack.recorder.seen[first_request:]:
        assert b"_secret_" not in body and REQUIRES_3DS.encode() not in body
