"""Optimistic updates in the portal page, in headless Chromium against the real API,
workflow and localstripe. ``Gate`` (the test hook that delays the API) holds the page's
request or the server's answer, so the tests see the pending state before the server
answers, the rollback on a refusal, a reversal by the workflow learnt by polling while
the answer is still held, and two tabs racing, which end in the server's order."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

from tests.e2e.conftest import Stack
from tests.e2e.support import (
    FAILS_WHEN_CHARGED,
    Gate,
    chromium,
    open_portal,
    read,
    section,
    subscriber,
)

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

NEW_CARD = "5555555555554444"


async def test_each_action_is_shown_pending_before_the_server_answers(e2e_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=60) as http:
        sid, url, _portal = await subscriber(e2e_stack, http)
        errors: list[str] = []
        async with chromium() as browser:
            page = await open_portal(browser, url, errors)
            sub = section(page, sid)
            pending = sub.locator('[data-field="pending-line"]')

            # Cancel: shown at once, before the request has even reached the server.
            async with Gate(page, "/cancel") as gate:
                await sub.locator('[data-action="cancel"]').click()
                await expect(pending).to_contain_text("cancelling at the end of the period")
                await expect(sub).to_have_attribute("data-pending", "true")
                await expect(sub.locator('[data-field="cancel-notice"]')).to_contain_text(
                    "Cancels on"
                )
                assert gate.arrived.is_set()
                assert (await read(http, sid))["cancel_at_period_end"] is False
            await expect(page.locator("#message")).to_contain_text("Your subscription will end on")
            await expect(pending).to_be_hidden()
            await expect(sub).to_have_attribute("data-pending", "false")

            # Undo.
            async with Gate(page, "/undo-cancel"):
                await sub.locator('[data-action="undo-cancel"]').click()
                await expect(pending).to_contain_text("keeping your subscription")
                await expect(sub.locator('[data-field="cancel-notice"]')).to_be_hidden()
                assert (await read(http, sid))["cancel_at_period_end"] is True
            await expect(page.locator("#message")).to_have_text("Your subscription will continue.")
            await expect(pending).to_be_hidden()

            # Change plan.
            await sub.locator('[data-field="plan-select"]').select_option("business-monthly")
            await sub.locator('[data-action="preview"]').click()
            await expect(sub.locator('[data-field="preview"]')).to_be_visible()
            async with Gate(page, "/change-plan"):
                await sub.locator('[data-action="confirm-change"]').click()
                await expect(sub.locator('[data-field="plan"]')).to_have_text(
                    "Business (monthly)pending"
                )
                await expect(pending).to_contain_text("changing to Business (monthly)")
                assert (await read(http, sid))["plan_id"] == "starter-monthly"
            await expect(page.locator("#message")).to_have_text("Plan change applied.")
            await expect(sub.locator('[data-field="plan"]')).to_have_text("Business (monthly)")

            # Set card: the gateway's card element first, then our API, held.
            await sub.locator('[data-action="update-card"]').click()
            mount = sub.locator('[data-field="card-mount"]')
            await mount.locator('input[placeholder="number"]').fill(NEW_CARD)
            await mount.locator('input[placeholder="exp_month"]').fill("11")
            await mount.locator('input[placeholder="exp_year"]').fill("32")
            await mount.locator('input[placeholder="cvc"]').fill("321")
            await mount.locator('input[placeholder="postal_code"]').fill("10115")
            async with Gate(page, "/payment-method") as gate:
                await sub.locator('[data-action="save-card"]').click()
                await expect(sub.locator('[data-field="card"]')).to_have_text("new card (saving…)")
                await expect(pending).to_contain_text("saving your new card")
                await gate.arrived.wait()
            await expect(page.locator("#message")).to_contain_text("ending 4444 saved")
            await expect(sub.locator('[data-field="card"]')).to_have_text(re.compile(r"•••• 4444"))
            assert errors == []


async def test_a_refused_change_rolls_back_and_says_why(e2e_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=60) as http:
        sid, url, portal = await subscriber(e2e_stack, http)
        errors: list[str] = []
        async with chromium() as browser:
            page = await open_portal(browser, url, errors)
            sub = section(page, sid)
            await sub.locator('[data-field="plan-select"]').select_option("business-monthly")
            await sub.locator('[data-action="preview"]').click()
            await expect(sub.locator('[data-field="preview"]')).to_be_visible()
            # Meanwhile, elsewhere, the subscription is set to end: the change will be refused.
            cancelled = await http.post(f"/v1/portal/subscriptions/{sid}/cancel", headers=portal)
            assert cancelled.status_code == 200
            async with Gate(page, "/change-plan", hold="response") as gate:
                await sub.locator('[data-action="confirm-change"]').click()
                await expect(sub.locator('[data-field="plan"]')).to_have_text(
                    "Business (monthly)pending"
                )
                await gate.arrived.wait()
                while not gate.statuses:  # the server has answered; the page waits for it
                    await page.wait_for_timeout(50)
                assert gate.statuses == [409]
            message = page.locator("#message")
            await expect(message).to_contain_text("set to end at the end of the period")
            await expect(message).to_contain_text("Nothing was changed.")
            await expect(message).to_have_class(re.compile("error"))
            await expect(sub.locator('[data-field="plan"]')).to_have_text("Starter (monthly)")
            await expect(sub).to_have_attribute("data-pending", "false")
            # The server's own state, learnt afterwards: the cancellation.
            await expect(sub.locator('[data-field="cancel-notice"]')).to_contain_text("Cancels on")
            assert errors == []


async def test_a_reversal_by_the_workflow_is_learnt_by_polling_and_rolled_back(
    e2e_stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=60) as http:
        sid, url, _portal = await subscriber(e2e_stack, http, later_card=FAILS_WHEN_CHARGED)
        errors: list[str] = []
        async with chromium() as browser:
            page = await open_portal(browser, url, errors)
            sub = section(page, sid)
            await sub.locator('[data-field="plan-select"]').select_option("business-monthly")
            await sub.locator('[data-action="preview"]').click()
            await expect(sub.locator('[data-field="preview"]')).to_be_visible()
            # The answer is held for the whole test: what the page learns, it learns by
            # polling the subscription.
            async with Gate(page, "/change-plan", hold="response") as gate:
                await sub.locator('[data-action="confirm-change"]').click()
                await expect(sub.locator('[data-field="plan"]')).to_have_text(
                    "Business (monthly)pending"
                )
                message = page.locator("#message")
                await expect(message).to_contain_text(
                    "The payment for the change failed, so your plan was not changed",
                    timeout=20_000,
                )
                await expect(sub.locator('[data-field="plan"]')).to_have_text("Starter (monthly)")
                await expect(sub).to_have_attribute("data-pending", "false")
                await gate.arrived.wait()
            after = await read(http, sid)
            assert after["plan_id"] == "starter-monthly"
            assert after["plan_changes"][-1]["outcome"] == "reverted"
            # The proration invoice was neutralized by a credit note, listed at once.
            await expect(page.locator("#credit-notes tbody tr")).to_have_count(1)
            await expect(sub.locator('[data-field="plan"]')).to_have_text("Starter (monthly)")
            assert errors == []


async def test_two_tabs_racing_end_in_the_servers_order(e2e_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=60) as http:
        sid, url, _portal = await subscriber(e2e_stack, http)
        errors: list[str] = []
        async with chromium() as browser:
            context = await browser.new_context()
            first = await open_portal(context, url, errors)
            second = await open_portal(context, url, errors)
            a, b = section(first, sid), section(second, sid)
            await b.locator('[data-field="plan-select"]').select_option("business-monthly")
            await b.locator('[data-action="preview"]').click()
            await expect(b.locator('[data-field="preview"]')).to_be_visible()

            async with Gate(first, "/cancel") as cancel, Gate(second, "/change-plan") as change:
                await a.locator('[data-action="cancel"]').click()
                await b.locator('[data-action="confirm-change"]').click()
                await expect(a.locator('[data-field="cancel-notice"]')).to_be_visible()
                await expect(b.locator('[data-field="plan"]')).to_have_text(
                    "Business (monthly)pending"
                )
                await cancel.arrived.wait()
                await change.arrived.wait()
                # The server gets the cancellation first ...
                cancel.release()
                await expect(first.locator("#message")).to_contain_text("will end on")
                # ... and tab B hears of it from tab A at once, its own change still pending.
                await expect(b.locator('[data-field="cancel-notice"]')).to_be_visible()
                await expect(b).to_have_attribute("data-pending", "true")
                change.release()
                # Then the change, which the cancellation now forbids: B rolls back.
                await expect(second.locator("#message")).to_contain_text(
                    "set to end at the end of the period"
                )
            for tab in (a, b):
                await expect(tab.locator('[data-field="plan"]')).to_have_text("Starter (monthly)")
                await expect(tab.locator('[data-field="cancel-notice"]')).to_contain_text(
                    "Cancels on"
                )
                await expect(tab).to_have_attribute("data-pending", "false")
            server = await read(http, sid)
            assert (server["plan_id"], server["cancel_at_period_end"]) == ("starter-monthly", True)
            assert errors == []
