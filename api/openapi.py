"""The OpenAPI document as the API really answers: the refusals every route can give
before it runs (the rate limit, the card-data guard, the body limits), and one error
shape, JSON, for every error of every route, the HTML and PDF documents' included.

FastAPI documents what a route declares; the middleware in front of every route
(``api.rate_limit``, ``api.pan_guard``) answers before any route runs, so its answers
are added here, once, to every operation.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA_REF = "#/components/schemas/ErrorResponse"

# Answered for any operation, before its route runs.
EVERY_OPERATION: dict[str, str] = {
    "400": "Refused before the route ran: card data in the path or query string "
    "(`card_data_refused`), or the scan budget exhausted",
    "429": "Too many requests (`rate_limited`); Retry-After says when to try again",
}
# Answered for an operation that takes a body, before its route runs.
WITH_A_BODY: dict[str, str] = {
    "400": "Refused before the route ran: card data in the path, query string or body "
    "(`card_data_refused`), JSON nested too deep (`body_too_deep`), or the scan budget "
    "exhausted",
    "413": "The body is larger than the API accepts (`body_too_large`)",
    "415": "A JSON body that is not UTF-8 (`unsupported_charset`)",
}

_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the refusals every operation can give, and give every error response the one
    JSON error shape (a route that serves HTML or a PDF still fails in JSON)."""
    for item in schema.get("paths", {}).values():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            refusals = dict(EVERY_OPERATION)
            if "requestBody" in operation:
                refusals.update(WITH_A_BODY)
            for status, description in refusals.items():
                responses.setdefault(status, {"description": description})
            for status, response in responses.items():
                if status[0] in "45":
                    response["content"] = {
                        "application/json": {"schema": {"$ref": ERROR_SCHEMA_REF}}
                    }
            if "429" in responses:
                responses["429"].setdefault(
                    "headers",
                    {
                        "Retry-After": {
                            "description": "Seconds to wait before trying again",
                            "schema": {"type": "integer", "minimum": 0},
                        }
                    },
                )
    return schema


def install_openapi(app: FastAPI, error_schema: dict[str, Any]) -> None:
    """Serve :func:`complete`'s document at ``/openapi.json``; ``error_schema`` is the
    JSON schema of the error shape (``ErrorResponse``), registered as a component."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in error_schema.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components.setdefault("ErrorResponse", error_schema)
            app.openapi_schema = complete(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
