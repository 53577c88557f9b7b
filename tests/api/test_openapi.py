"""The OpenAPI document lists every server and portal route with its error responses."""

from __future__ import annotations

from typing import Any

from api.app import create_app
from api.openapi import EVERY_OPERATION, WITH_A_BODY
from dunwell.settings import Settings

SERVER = "server api key"
PORTAL = "portal session token"

# (method, path): (auth, documented error statuses)
EXPECTED: dict[tuple[str, str], tuple[str, set[str]]] = {
    ("post", "/v1/customers"): (SERVER, {"400", "401", "403", "409", "422", "502", "503"}),
    ("get", "/v1/customers/{customer_id}"): (SERVER, {"401", "404", "422"}),
    ("post", "/v1/portal-sessions"): (SERVER, {"400", "401", "403", "404", "422"}),
    ("post", "/v1/subscriptions"): (
        SERVER,
        {"400", "401", "403", "404", "409", "422", "502", "503"},
    ),
    ("get", "/v1/subscriptions/{subscription_id}"): (SERVER, {"401", "404", "422", "503"}),
    ("get", "/v1/subscriptions/{subscription_id}/invoices"): (SERVER, {"401", "404", "422"}),
    ("get", "/v1/portal/session"): (PORTAL, {"401", "404", "422"}),
    ("get", "/v1/portal/subscriptions"): (PORTAL, {"401", "422", "503"}),
    ("get", "/v1/portal/subscriptions/{subscription_id}"): (
        PORTAL,
        {"401", "404", "422", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/preview-change"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/change-plan"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/change-plan/authentication"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/cancel"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/undo-cancel"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/payment-method/setup-intent"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "502", "503"},
    ),
    ("post", "/v1/portal/subscriptions/{subscription_id}/payment-method"): (
        PORTAL,
        {"400", "401", "404", "409", "422", "502", "503"},
    ),
    ("post", "/v1/webhook-endpoints"): (SERVER, {"401", "403", "404", "422"}),
    ("get", "/v1/webhook-endpoints"): (SERVER, {"401", "404", "422"}),
    ("get", "/v1/webhook-endpoints/{endpoint_id}"): (SERVER, {"401", "404", "422"}),
    ("post", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): (
        SERVER,
        {"401", "403", "404", "422"},
    ),
    ("post", "/v1/webhook-endpoints/{endpoint_id}/disable"): (
        SERVER,
        {"401", "403", "404", "422"},
    ),
    ("post", "/v1/webhook-endpoints/{endpoint_id}/enable"): (
        SERVER,
        {"401", "403", "404", "422"},
    ),
    ("get", "/v1/portal/invoices"): (PORTAL, {"401", "422"}),
    ("get", "/v1/portal/credit-notes"): (PORTAL, {"401", "422"}),
}


def refusals(operation: dict[str, Any]) -> set[str]:
    """What the middleware may answer before any route runs (api/openapi.py)."""
    before = set(EVERY_OPERATION)
    return before | set(WITH_A_BODY) if "requestBody" in operation else before


def _document() -> dict[str, Any]:
    app = create_app(Settings(env="test"))
    document: dict[str, Any] = app.openapi()
    return document


def test_every_route_is_documented_with_its_errors() -> None:
    document = _document()
    schemes = document["components"]["securitySchemes"]
    for (method, path), (auth, errors) in EXPECTED.items():
        operation = document["paths"][path][method]
        responses = operation["responses"]
        documented = {code for code in responses if not code.startswith("2")}
        assert documented == errors | refusals(operation), (method, path, documented)
        for code in errors:
            schema = responses[code]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, code)
        (success,) = [code for code in responses if code.startswith("2")]
        assert "$ref" in responses[success]["content"]["application/json"]["schema"]
        assert operation["description"].strip() and "\n" not in operation["description"]
        (requirement,) = operation["security"]
        (scheme,) = requirement
        assert schemes[scheme]["description"].lower() == auth, (path, scheme)


def test_request_bodies_refuse_card_fields_by_schema() -> None:
    schemas = _document()["components"]["schemas"]
    pm = schemas["PaymentMethodIn"]
    assert pm["additionalProperties"] is False
    assert pm["properties"]["payment_method_id"]["pattern"].startswith("^pm_")


def test_the_portal_page_is_listed() -> None:
    assert "get" in _document()["paths"]["/portal"]


def test_document_routes_are_documented_as_html_and_pdf() -> None:
    paths = _document()["paths"]
    for prefix, auth in (("/v1", SERVER), ("/v1/portal", PORTAL)):
        for kind, param in (("invoices", "invoice_id"), ("credit-notes", "note_id")):
            for suffix, media in (("document", "text/html"), ("document.pdf", "application/pdf")):
                operation = paths[f"{prefix}/{kind}/{{{param}}}/{suffix}"]["get"]
                assert media in operation["responses"]["200"]["content"], (kind, suffix)
                assert {"401", "404", "422"} <= set(operation["responses"]), (kind, suffix)
                schemes = _document()["components"]["securitySchemes"]
                ((scheme, _),) = operation["security"][0].items()
                assert schemes[scheme]["description"].lower() == auth


def test_ops_routes_name_the_ops_key_and_document_its_403() -> None:
    document = _document()
    schemes = document["components"]["securitySchemes"]
    ops_paths = [p for p in document["paths"] if p.startswith("/v1/ops/")]
    assert "/v1/ops/audit" in ops_paths
    for path in ops_paths:
        for method, operation in document["paths"][path].items():
            ((scheme, _),) = operation["security"][0].items()
            assert schemes[scheme]["description"] == "Ops API key", (method, path)
            assert "403" in operation["responses"], (method, path)
