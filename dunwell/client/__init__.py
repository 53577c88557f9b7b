"""A typed Python client for Dunwell's server API, for the SaaS backend.

``Dunwell`` (sync) and ``AsyncDunwell`` (async) send the same requests (customers,
subscriptions and their invoices, portal sessions, access and entitlements, the
endpoints that receive events): each method builds its request and reads its answer
through ``dunwell.client._calls`` (one transport-agnostic builder and parser per
operation), and the two clients only differ in how they send (``httpx.Client`` or
``httpx.AsyncClient``). ``verify_event`` checks an
incoming Dunwell event (Standard Webhooks signature) and returns it typed.

Errors are ``DunwellError`` subclasses chosen by the API's machine-readable code
(``dunwell.client.errors``); responses are pydantic models (``dunwell.client.models``).

May import: httpx, pydantic, standardwebhooks and the standard library only, never the
rest of Dunwell, so that it works installed on its own in the SaaS backend.
"""

from dunwell.client._clients import AsyncDunwell, Dunwell
from dunwell.client.errors import (
    AuthenticationError,
    CardDataRefusedError,
    ConflictError,
    DunwellConnectionError,
    DunwellError,
    GatewayError,
    InvalidEventError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    ServiceUnavailableError,
    UnexpectedResponseError,
)
from dunwell.client.events import verify_event
from dunwell.client.models import (
    Access,
    Address,
    CreatedEndpoint,
    Customer,
    Endpoint,
    Entitlements,
    Event,
    Invoice,
    PortalSession,
    RotatedSecret,
    Subscription,
    SubscriptionAccess,
)

__all__ = [
    "Access",
    "Address",
    "AsyncDunwell",
    "AuthenticationError",
    "CardDataRefusedError",
    "ConflictError",
    "CreatedEndpoint",
    "Customer",
    "Dunwell",
    "DunwellConnectionError",
    "DunwellError",
    "Endpoint",
    "Entitlements",
    "Event",
    "GatewayError",
    "InvalidEventError",
    "InvalidRequestError",
    "Invoice",
    "NotFoundError",
    "PermissionDeniedError",
    "PortalSession",
    "RateLimitedError",
    "RotatedSecret",
    "ServiceUnavailableError",
    "Subscription",
    "SubscriptionAccess",
    "UnexpectedResponseError",
    "verify_event",
]
