"""axe-core (bundled by axe-playwright-python) run in Debian's Chromium on the portal
page, its card form and preview open, on an invoice document, and on the landing page:
no serious or critical violation."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page, expect

from tests.e2e.conftest import Stack
from tests.e2e.support import chromium, open_portal, section, subscriber

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


async def _serious(page: Page) -> list[dict[str, Any]]:
    results = await Axe().run(page)
    violations: list[dict[str, Any]] = results.response["violations"]
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


async def test_portal_pages_have_no_serious_accessibility_violations(e2e_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=60) as http:
        sid, url, _ = await subscriber(e2e_stack, http)
        errors: list[str] = []
        async with chromium() as browser:
            page = await open_portal(browser, url, errors)
            sub = section(page, sid)
            assert await _serious(page) == []

            await sub.locator('[data-field="plan-select"]').select_option("business-monthly")
            await sub.locator('[data-action="preview"]').click()
            await expect(sub.locator('[data-field="preview"]')).to_be_visible()
            await sub.locator('[data-action="update-card"]').click()
            await expect(sub.locator('[data-field="card-form"]')).to_be_visible()
            assert await _serious(page) == []
            await page.screenshot(path=str(e2e_stack.screenshots / "portal.png"), full_page=True)

            async with page.expect_popup() as popup:
                await (
                    page.locator("#invoices tbody tr")
                    .first.get_by_role("button", name=re.compile("^View"))
                    .click()
                )
            document = await popup.value
            await document.wait_for_load_state()
            assert await _serious(document) == []

            landing = await browser.new_page()
            await landing.goto(f"{e2e_stack.base_url}/")
            assert await _serious(landing) == []

            # The check itself: a button without a name is a critical violation.
            control = await browser.new_page()
            await control.set_content('<html lang="en"><title>x</title><button></button></html>')
            assert [v["id"] for v in await _serious(control)] == ["button-name"]
            assert errors == []
