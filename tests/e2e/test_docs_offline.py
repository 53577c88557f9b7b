"""The API docs and the landing page in headless Chromium with every request to another
host refused: Swagger UI and ReDoc render from the installed files alone."""

from __future__ import annotations

import pytest
from playwright.async_api import Route, expect

from tests.e2e.conftest import Stack
from tests.e2e.support import chromium

pytestmark = [pytest.mark.temporal, pytest.mark.slow]


async def test_docs_render_with_the_network_blocked(e2e_stack: Stack) -> None:
    refused: list[str] = []

    async def only_the_api(route: Route) -> None:
        if route.request.url.startswith(e2e_stack.base_url):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort("internetdisconnected")

    async with chromium() as browser:
        context = await browser.new_context()
        await context.route("**/*", only_the_api)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        await page.goto(f"{e2e_stack.base_url}/")
        await expect(page.locator("h1")).to_have_text("Dunwell")
        await page.get_by_role("link", name="API docs (Swagger UI)").click()
        # Swagger UI parses a 1.5 MB bundle first: slow on a loaded machine, as ReDoc below.
        await expect(page.locator(".swagger-ui .info .title")).to_contain_text(
            "Dunwell", timeout=20_000
        )
        await expect(page.locator(".swagger-ui")).to_contain_text("/v1/portal/subscriptions")
        await page.screenshot(path=str(e2e_stack.screenshots / "docs-offline.png"))

        await page.goto(f"{e2e_stack.base_url}/redoc")
        await expect(page.locator("h1").first).to_contain_text("Dunwell", timeout=20_000)
        await expect(page.locator("body")).to_contain_text("change-plan")
        assert refused == [], refused
        assert errors == []
