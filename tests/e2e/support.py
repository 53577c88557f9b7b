"""Helpers of the portal browser tests: subscribers made through the APIs, a browser,
and ``Gate``, the test hook that delays the API for the page."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import stripe
from playwright.async_api import Browser, BrowserContext, Page, Route, async_playwright, expect

from tests.api.conftest import AUTH, STRIPE_KEY, VISA_OK, customer_body
from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, Stack

FAILS_WHEN_CHARGED = "4000000000000341"
REQUIRES_3DS = "4000002500003155"


class Gate:
    """Holds the page's requests to one route until released, so a test sees what the
    page shows before the server answers.

    ``hold="request"``: the request has not reached the server yet. ``hold="response"``:
    the server has answered, and the page has not had the answer yet."""

    def __init__(
        self,
        target: Page | BrowserContext,
        path: str,
        *,
        method: str = "POST",
        hold: Literal["request", "response"] = "request",
    ) -> None:
        self._target = target
        self._pattern = re.compile(re.escape(path) + r"(\?.*)?$")
        self._method = method
        self._hold = hold
        self.arrived = asyncio.Event()
        self._released = asyncio.Event()
        self._handling = 0
        self.statuses: list[int] = []

    async def __aenter__(self) -> Gate:
        await self._target.route(self._pattern, self._handle)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.release()
        # Unrouting while a held request is still being passed on would handle it twice.
        for _ in range(200):
            if not self._handling:
                break
            await asyncio.sleep(0.05)
        await self._target.unroute(self._pattern, self._handle)

    async def _handle(self, route: Route) -> None:
        if route.request.method != self._method:
            await route.fallback()
            return
        self._handling += 1
        try:
            self.arrived.set()
            if self._hold == "request":
                await self._released.wait()
                await route.continue_()
                return
            response = await route.fetch()
            self.statuses.append(response.status)
            await self._released.wait()
            await route.fulfill(response=response)
        finally:
            self._handling -= 1

    def release(self) -> None:
        self._released.set()


def card(stack: Stack, number: str) -> str:
    """A payment method token made as Stripe.js makes one (card data to the gateway only)."""
    gateway = stripe.StripeClient(STRIPE_KEY, base_addresses={"api": stack.localstripe_url})
    params: Any = {
        "type": "card",
        "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
    }
    return str(gateway.v1.payment_methods.create(params=params).id)


async def subscriber(
    stack: Stack,
    http: httpx.AsyncClient,
    *,
    plan_id: str = "starter-monthly",
    later_card: str | None = None,
    **customer: Any,
) -> tuple[str, str, dict[str, str]]:
    """A customer with an active subscription (paid on a good card, then switched to
    ``later_card`` if given): (subscription id, portal URL, portal auth headers)."""
    created_customer = (
        await http.post("/v1/customers", json=customer_body(**customer), headers=AUTH)
    ).json()
    created = await http.post(
        "/v1/subscriptions",
        json={
            "customer_id": created_customer["id"],
            "plan_id": plan_id,
            "currency": "EUR",
            "payment_method_id": card(stack, VISA_OK),
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    sid: str = created.json()["id"]
    await until(http, sid, lambda s: s["status"] == "active")
    session = (
        await http.post(
            "/v1/portal-sessions", json={"customer_id": created_customer["id"]}, headers=AUTH
        )
    ).json()
    portal = {"Authorization": f"Bearer {session['token']}"}
    if later_card is not None:
        switched = await http.post(
            f"/v1/portal/subscriptions/{sid}/payment-method",
            json={"payment_method_id": card(stack, later_card)},
            headers=portal,
        )
        assert switched.status_code == 200, switched.text
    return sid, session["url"], portal


async def read(http: httpx.AsyncClient, sid: str) -> dict[str, Any]:
    response = await http.get(f"/v1/subscriptions/{sid}", headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def until(
    http: httpx.AsyncClient, sid: str, ok: Any, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        sub = await read(http, sid)
        if ok(sub):
            return sub
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never reached; last: {sub}")
        await asyncio.sleep(0.2)


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_portal(target: Browser | BrowserContext, url: str, errors: list[str]) -> Page:
    page = await target.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(url)
    await expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=20_000)
    return page


def section(page: Page, sid: str) -> Any:
    return page.locator(f'section[data-subscription-id="{sid}"]')
