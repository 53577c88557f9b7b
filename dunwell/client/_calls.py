"""Each server-API operation once: the request it sends and how its answer is read.

A ``Call`` is transport-agnostic: ``request`` turns it into an ``httpx.Request`` and
``answer`` reads the ``httpx.Response``, so the sync and the async client share every
operation and differ only in how they send.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as _ShapeError

from dunwell.client.errors import DunwellError, UnexpectedResponseError, error_class
from dunwell.client.models import (
    Address,
    CreatedEndpoint,
    Customer,
    Endpoint,
    Entitlements,
    Invoice,
    PortalSession,
    RotatedSecret,
    Subscription,
    SubscriptionAccess,
)

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

USER_AGENT = "dunwell-client/1"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Any], T]
    json: dict[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def request(call: Call[Any], *, base_url: str, api_key: str) -> httpx.Request:
    headers = {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        **call.headers,
    }
    return httpx.Request(
        call.method, base_url.rstrip("/") + call.path, json=call.json, headers=headers
    )


def answer(call: Call[T], response: httpx.Response) -> T:
    """The call's result from a 2xx answer; any other answer raises its ``DunwellError``."""
    if not response.is_success:
        raise error_from(response)
    try:
        return call.read(response.json())
    except (ValueError, KeyError, TypeError, _ShapeError) as err:
        raise UnexpectedResponseError(
            f"{call.method} {call.path} answered {response.status_code} with a body this "
            "client cannot read",
            status=response.status_code,
            code="unexpected_response",
        ) from err


def error_from(response: httpx.Response) -> DunwellError:
    status = response.status_code
    retry_after = _retry_after(response.headers.get("Retry-After"))
    try:
        error = response.json()["error"]
        code, message = error["code"], error["message"]
        details = error.get("details")
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError(code)
    except (ValueError, KeyError, TypeError):
        return UnexpectedResponseError(
            f"HTTP {status} without Dunwell's error body",
            status=status,
            code="unexpected_response",
            retry_after=retry_after,
        )
    return error_class(status, code)(
        message,
        status=status,
        code=code,
        details=details if isinstance(details, list) else None,
        retry_after=retry_after,
    )


def _retry_after(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def _model(model: type[M]) -> Callable[[Any], M]:
    return model.model_validate


def _segment(value: str) -> str:
    return quote(value, safe="")


def _idempotent(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Idempotency-Key": key}


# --- customers ------------------------------------------------------------------------


def create_customer(
    *,
    email: str,
    name: str,
    address: Address | Mapping[str, str | None],
    tax_id: str | None,
    timezone: str,
    segment: str,
    idempotency_key: str | None,
) -> Call[Customer]:
    where = address.model_dump() if isinstance(address, Address) else dict(address)
    body: dict[str, Any] = {
        "email": email,
        "name": name,
        "address": {k: v for k, v in where.items() if v is not None},
        "timezone": timezone,
        "segment": segment,
    }
    if tax_id is not None:
        body["tax_id"] = tax_id
    return Call("POST", "/v1/customers", _model(Customer), body, _idempotent(idempotency_key))


def get_customer(customer_id: str) -> Call[Customer]:
    return Call("GET", f"/v1/customers/{_segment(customer_id)}", _model(Customer))


def customer_entitlements(customer_id: str) -> Call[Entitlements]:
    return Call("GET", f"/v1/customers/{_segment(customer_id)}/entitlements", _model(Entitlements))


# --- subscriptions --------------------------------------------------------------------


def create_subscription(
    *,
    customer_id: str,
    plan_id: str,
    currency: str,
    payment_method_id: str | None,
    trial: bool,
    backdate_start_date: datetime | None,
    idempotency_key: str | None,
) -> Call[Subscription]:
    body: dict[str, Any] = {
        "customer_id": customer_id,
        "plan_id": plan_id,
        "currency": currency,
        "trial": trial,
    }
    if payment_method_id is not None:
        body["payment_method_id"] = payment_method_id
    if backdate_start_date is not None:
        body["backdate_start_date"] = backdate_start_date.isoformat()
    return Call(
        "POST", "/v1/subscriptions", _model(Subscription), body, _idempotent(idempotency_key)
    )


def get_subscription(subscription_id: str) -> Call[Subscription]:
    return Call("GET", f"/v1/subscriptions/{_segment(subscription_id)}", _model(Subscription))


def subscription_access(subscription_id: str) -> Call[SubscriptionAccess]:
    return Call(
        "GET",
        f"/v1/subscriptions/{_segment(subscription_id)}/access",
        _model(SubscriptionAccess),
    )


_INVOICES = TypeAdapter(list[Invoice])


def _invoices(body: Any) -> list[Invoice]:
    return _INVOICES.validate_python(body["items"])


def subscription_invoices(subscription_id: str) -> Call[list[Invoice]]:
    return Call("GET", f"/v1/subscriptions/{_segment(subscription_id)}/invoices", _invoices)


# --- portal sessions ------------------------------------------------------------------


def create_portal_session(customer_id: str) -> Call[PortalSession]:
    return Call("POST", "/v1/portal-sessions", _model(PortalSession), {"customer_id": customer_id})


# --- endpoints that receive Dunwell's events ------------------------------------------

_ENDPOINTS = "/v1/webhook-endpoints"
_ENDPOINT_LIST = TypeAdapter(list[Endpoint])


def _endpoints(body: Any) -> list[Endpoint]:
    return _ENDPOINT_LIST.validate_python(body["items"])


def create_endpoint(*, url: str, event_types: list[str], description: str) -> Call[CreatedEndpoint]:
    body = {"url": url, "event_types": list(event_types), "description": description}
    return Call("POST", _ENDPOINTS, _model(CreatedEndpoint), body)


def list_endpoints() -> Call[list[Endpoint]]:
    return Call("GET", _ENDPOINTS, _endpoints)


def get_endpoint(endpoint_id: str) -> Call[Endpoint]:
    return Call("GET", f"{_ENDPOINTS}/{_segment(endpoint_id)}", _model(Endpoint))


def rotate_endpoint_secret(endpoint_id: str, *, overlap_seconds: int) -> Call[RotatedSecret]:
    return Call(
        "POST",
        f"{_ENDPOINTS}/{_segment(endpoint_id)}/rotate-secret",
        _model(RotatedSecret),
        {"overlap_seconds": overlap_seconds},
    )


def set_endpoint_status(endpoint_id: str, *, enabled: bool, reason: str | None) -> Call[Endpoint]:
    action = "enable" if enabled else "disable"
    body = {} if reason is None else {"reason": reason}
    return Call("POST", f"{_ENDPOINTS}/{_segment(endpoint_id)}/{action}", _model(Endpoint), body)
