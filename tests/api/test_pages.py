"""The pages the API serves besides the portal: the landing page, Swagger UI and ReDoc
from installed files (never a CDN), and the portal page's Content-Security-Policy in
dev (localstripe's fake Stripe.js) and production (Stripe's published list)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from dunwell.settings import Environment, Settings
from tests.api.conftest import make_settings, running

PRODUCTION = {
    "env": "production",
    "stripe_api_key": "sk_live_" + "x" * 32,
    "stripe_webhook_secret": "whsec_" + "w" * 32,
    "api_key": "k" * 32,
    "ops_api_key": "o" * 32,
    "portal_session_secret": "s" * 32,
    "relay_secret": "r" * 32,
    "seller_name": "Example Software Ltd",
    "stripe_api_base": None,
    "settlement_api_base": None,
    "temporal_allow_plaintext": True,
    "payload_keys": "k1:" + "A" * 43,
}


def _directives(header: str) -> dict[str, list[str]]:
    parsed = {}
    for part in header.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.fixture
async def dev_api(api_db_url: str, localstripe_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(api_db_url, localstripe_url, env="dev", temporal_ui_port=8299)
    async with running(create_app(settings)) as http:
        yield http


@pytest.fixture
async def production_api(api_db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(**{**PRODUCTION, "database_url": api_db_url})
    assert settings.env is Environment.PRODUCTION
    async with running(create_app(settings)) as http:
        yield http


async def test_production_portal_csp_follows_stripes_published_list(
    production_api: httpx.AsyncClient,
) -> None:
    page = await production_api.get("/portal")
    assert page.status_code == 200
    csp = _directives(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"] == ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]
    assert csp["frame-src"] == [
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "https://hooks.stripe.com",
    ]
    assert csp["connect-src"] == ["'self'", "https://api.stripe.com"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'none'"]
    everything = " ".join(v for values in csp.values() for v in values)
    assert "'unsafe-eval'" not in everything
    assert "http://" not in everything
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"


async def test_dev_portal_csp_allows_the_local_gateway_only(
    dev_api: httpx.AsyncClient, localstripe_url: str
) -> None:
    page = await dev_api.get("/portal")
    csp = _directives(page.headers["content-security-policy"])
    origin = re.match(r"https?://[^/]+", localstripe_url)
    assert origin is not None
    for name in ("script-src", "connect-src"):
        assert csp[name] == ["'self'", origin.group(0)]
    assert csp["frame-src"] == [origin.group(0)]
    assert "stripe.com" not in page.headers["content-security-policy"]


async def test_landing_page_links_docs_health_and_dev_tools(dev_api: httpx.AsyncClient) -> None:
    page = await dev_api.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for href in ("/docs", "/redoc", "/openapi.json", "/healthz", "/readyz", "/dev/mail"):
        assert f'href="{href}"' in page.text, href
    assert 'href="http://127.0.0.1:8299"' in page.text  # the Temporal UI
    assert "script-src" not in page.headers["content-security-policy"]


async def test_landing_page_outside_dev_has_no_dev_links(
    production_api: httpx.AsyncClient,
) -> None:
    page = await production_api.get("/")
    assert page.status_code == 200
    assert 'href="/docs"' in page.text and 'href="/healthz"' in page.text
    assert "/dev/mail" not in page.text and "Temporal UI" not in page.text


async def test_docs_load_only_local_assets(dev_api: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        page = await dev_api.get(path)
        assert page.status_code == 200, path
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources, path
        assert all(s.startswith("/") for s in sources), sources
        assert "fonts.googleapis" not in page.text and "cdn." not in page.text
    for name, media in (
        ("swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui.css", "text/css"),
        ("redoc.standalone.js", "text/javascript"),
        ("favicon.png", "image/png"),
    ):
        asset = await dev_api.get(f"/docs/assets/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"].startswith(media)
        assert len(asset.content) > 1000
    missing = await dev_api.get("/docs/assets/other.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    spec = await dev_api.get("/openapi.json")
    assert spec.json()["info"]["title"] == "Dunwell"
