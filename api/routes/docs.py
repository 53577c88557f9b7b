"""The landing page (``GET /``) and the API docs, Swagger UI at ``/docs`` and ReDoc at
``/redoc``, served from an installed package so they render on a machine without
internet.

The Swagger UI and ReDoc bundles come from the ``fastapi-standalone-docs`` wheel's
static folder; only its files are used, not its patching of FastAPI, so the docs pages
are ordinary routes of this app. Nothing on these pages is fetched from elsewhere: no
CDN script, no web font, no remote favicon.
"""

from __future__ import annotations

import html
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from api.deps import SettingsDep
from api.errors import ApiError
from dunwell.settings import Environment

router = APIRouter(include_in_schema=False)

_ASSETS = {
    "swagger-ui-bundle.js": ("swagger", "text/javascript"),
    "swagger-ui.css": ("swagger", "text/css"),
    "redoc.standalone.js": ("redoc", "text/javascript"),
    "favicon.png": ("fastapi", "image/png"),
}
ASSET_PATH = "/docs/assets"
_HEADERS = {"X-Content-Type-Options": "nosniff"}


def _asset(name: str) -> bytes:
    folder, _media = _ASSETS[name]
    return resources.files("fastapi_standalone_docs").joinpath("static", folder, name).read_bytes()


@router.get("/docs/assets/{name}")
async def docs_asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    if name not in _ASSETS:
        raise ApiError(404, "not_found", f"no docs asset {name!r}")
    return Response(
        _asset(name),
        media_type=_ASSETS[name][1],
        headers={**_HEADERS, "Cache-Control": "public, max-age=86400"},
    )


@router.get("/docs")
async def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Dunwell API",
        swagger_js_url=f"{ASSET_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSET_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSET_PATH}/favicon.png",
    )


@router.get("/redoc")
async def redoc() -> HTMLResponse:
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="Dunwell API",
        redoc_js_url=f"{ASSET_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSET_PATH}/favicon.png",
        with_google_fonts=False,
    )


_LANDING_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'"


@router.get("/")
async def landing(settings: SettingsDep) -> HTMLResponse:
    """A small page pointing at the docs, the health endpoints and, in dev, the tools."""
    links = [
        ("/docs", "API docs (Swagger UI)"),
        ("/redoc", "API docs (ReDoc)"),
        ("/openapi.json", "OpenAPI document"),
        ("/healthz", "Liveness (/healthz)"),
        ("/readyz", "Readiness: database and Temporal (/readyz)"),
    ]
    if settings.env is Environment.DEV:
        temporal_ui = f"http://127.0.0.1:{settings.temporal_ui_port}"
        links += [("/dev/mail", "Mail sink (dev)"), (temporal_ui, "Temporal UI (dev)")]
    items = "".join(
        f'<li><a href="{html.escape(href)}">{html.escape(label)}</a></li>' for href, label in links
    )
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Dunwell</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;"
        "margin:2rem auto;padding:0 1rem;color:#1d2330}a{color:#1f4fbf}</style></head><body>"
        "<main><h1>Dunwell</h1><p>Billing orchestration: subscriptions, customer portal, "
        "dunning, tax and ledger. Customers reach the portal through the link their "
        f"provider's portal session gives them.</p><ul>{items}</ul></main></body></html>"
    )
    return HTMLResponse(page, headers={**_HEADERS, "Content-Security-Policy": _LANDING_CSP})
