"""The portal page in headless Chromium against the real API, workflow, ledger and
localstripe: preview, upgrade, cancel and undo, and a card update through the gateway's
own card element, with only a ``pm_…`` token ever reaching the API."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from playwright.async_api import Page, async_playwright, expect

from tests.api.conftest import AUTH, STRIPE_KEY, VISA_OK, customer_body
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Stack

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

NEW_CARD = "5555555555554444"


async def _subscribed_customer(stack: Stack) -> tuple[dict[str, Any], str, str]:
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stack.localstripe_url})
    card = {"number": VISA_OK, "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    pm = gateway.v1.payment_methods.create(params={"type": "card", "card": card})
    async with httpx.AsyncClient(base_url=stack.base_url, headers=AUTH, timeout=30) as http:
        customer = (await http.post("/v1/customers", json=customer_body())).json()
        created = await http.post(
            "/v1/subscriptions",
            json={
                "customer_id": customer["id"],
                "plan_id": "starter-monthly",
                "currency": "EUR",
                "payment_method_id": pm.id,
            },
        )
        assert created.status_code == 201, created.text
        subscription_id = created.json()["id"]
        for _ in range(200):
            sub = (await http.get(f"/v1/subscriptions/{subscription_id}")).json()
            if sub["status"] == "active":
                break
            await asyncio.sleep(0.1)
        assert sub["status"] == "active"
        session = await http.post("/v1/portal-sessions", json={"customer_id": customer["id"]})
    return customer, subscription_id, session.json()["url"]


async def _wait_ready(page: Page) -> None:
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=20_000)


async def test_portal_page_end_to_end(e2e_stack: Stack, tmp_path: Path) -> None:
    first_request = len(e2e_stack.recorder.seen)
    customer, subscription_id, url = await _subscribed_customer(e2e_stack)
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.goto(url)
            await _wait_ready(page)
            assert "session=" not in page.url  # the token left the address bar
            section = page.locator(f'section[data-subscription-id="{subscription_id}"]')
            await expect(section.locator('[data-field="plan"]')).to_have_text("Starter (monthly)")
            await expect(section.locator('[data-field="status"]')).to_have_text("active")
            await expect(page.locator("#invoices tbody tr")).to_have_count(1)

            # Preview: proration lines and their tax are on screen before the confirm button.
            await section.locator('[data-field="plan-select"]').select_option("business-monthly")
            await section.locator('[data-action="preview"]').click()
            preview = section.locator('[data-field="preview"]')
            await expect(preview).to_be_visible()
            lines = preview.locator('[data-field="preview-lines"] tbody tr')
            await expect(lines).to_have_count(2)
            await expect(lines.nth(0)).to_have_attribute("data-kind", "credit")
            await expect(lines.nth(1)).to_have_attribute("data-kind", "charge")
            await expect(lines.nth(0)).to_contain_text(re.compile(r"-\d+\.\d\d EUR"))
            await expect(lines.nth(1)).to_contain_text("DE 19%")
            await expect(section.locator('[data-field="preview-total"]')).to_have_text(
                re.compile(r"^\d+\.\d\d EUR$")
            )
            await expect(section.locator('[data-field="preview-tax"]')).to_contain_text(
                "including tax"
            )
            # The tax per rate, as the invoice will print it: one German VAT row.
            rates = preview.locator('[data-field="preview-tax-rows"] tbody tr')
            await expect(rates).to_have_count(1)
            await expect(rates.nth(0)).to_contain_text("DE")
            await expect(rates.nth(0)).to_contain_text("VAT")
            await expect(rates.nth(0)).to_contain_text("19%")
            confirm = section.locator('[data-action="confirm-change"]')
            await expect(confirm).to_be_visible()
            await page.screenshot(path=str(tmp_path / "preview.png"), full_page=True)
            # Previewing sent no change.
            assert e2e_stack.recorder.json_bodies("/change-plan", first_request) == []

            await confirm.click()
            await expect(page.locator("#message")).to_have_text("Plan change applied.")
            await expect(section.locator('[data-field="plan"]')).to_have_text("Business (monthly)")
            await expect(page.locator("#invoices tbody tr")).to_have_count(2)

            # Cancel at period end, then undo.
            await section.locator('[data-action="cancel"]').click()
            await expect(section.locator('[data-field="cancel-notice"]')).to_contain_text(
                "access continues"
            )
            undo = section.locator('[data-action="undo-cancel"]')
            await expect(undo).to_be_visible()
            await undo.click()
            await expect(page.locator("#message")).to_have_text("Your subscription will continue.")
            await expect(section.locator('[data-field="cancel-notice"]')).to_be_hidden()

            # A new card through the gateway's card element and confirmCardSetup.
            await section.locator('[data-action="update-card"]').click()
            mount = section.locator('[data-field="card-mount"]')
            await expect(mount.locator('input[placeholder="number"]')).to_be_visible()
            await mount.locator('input[placeholder="number"]').fill(NEW_CARD)
            await mount.locator('input[placeholder="exp_month"]').fill("11")
            await mount.locator('input[placeholder="exp_year"]').fill("32")
            await mount.locator('input[placeholder="cvc"]').fill("321")
            await mount.locator('input[placeholder="postal_code"]').fill("10115")
            await section.locator('[data-action="save-card"]').click()
            await expect(page.locator("#message")).to_contain_text("ending 4444 saved")
            # The card on file by brand, last four digits and expiry only (localstripe
            # names every test card's brand "visa").
            await expect(section.locator('[data-field="card"]')).to_have_text(
                re.compile(r"^[A-Z][\w ]* •••• 4444 \(11/2032\)$")
            )
            await page.screenshot(path=str(tmp_path / "portal.png"), full_page=True)
            assert errors == []
        finally:
            await browser.close()

    # What our API received: a pm_ token for the card, never the card number.
    (pm_body,) = e2e_stack.recorder.json_bodies("/payment-method", first_request)
    assert set(pm_body) == {"payment_method_id"}
    assert re.fullmatch(r"pm_\w+", pm_body["payment_method_id"])
    for _method, _path, body in e2e_stack.recorder.seen[first_request:]:
        assert NEW_CARD.encode() not in body
        assert b"cvc" not in body and b"exp_month" not in body
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": e2e_stack.localstripe_url})
    remote = gateway.v1.customers.retrieve(customer["gateway_customer_id"])
    assert remote.invoice_settings.default_payment_method == pm_body["payment_method_id"]
    assert (tmp_path / "portal.png").stat().st_size > 10_000
