"""``Dunwell`` and ``AsyncDunwell``: the same operations (``_calls``), sent with
``httpx.Client`` or ``httpx.AsyncClient``. Each method is one line: build the call,
send it, read the answer; nothing about an operation is written twice."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from dunwell.client import _calls
from dunwell.client._calls import Call
from dunwell.client.errors import DunwellConnectionError
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

ONE_DAY_S = 86_400

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0


def _unreachable(err: httpx.TransportError, call: Call[Any]) -> DunwellConnectionError:
    return DunwellConnectionError(
        f"{call.method} {call.path} did not reach Dunwell ({type(err).__name__}: {err})",
        code="connection_error",
    )


class Dunwell:
    """The server API, synchronously. ``api_key`` is a server API key."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT_S,
        http_client: httpx.Client | None = None,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self._owned = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)

    def _send(self, call: Call[T]) -> T:
        try:
            response = self._http.send(
                _calls.request(call, base_url=self.base_url, api_key=self._api_key)
            )
        except httpx.TransportError as err:
            raise _unreachable(err, call) from err
        return _calls.answer(call, response)

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def create_customer(
        self,
        *,
        email: str,
        name: str,
        address: Address | Mapping[str, str | None],
        tax_id: str | None = None,
        timezone: str = "UTC",
        segment: str = "default",
        idempotency_key: str | None = None,
    ) -> Customer:
        """Create a customer (and its gateway customer); retries with the same
        ``idempotency_key`` return the first result."""
        return self._send(
            _calls.create_customer(
                email=email,
                name=name,
                address=address,
                tax_id=tax_id,
                timezone=timezone,
                segment=segment,
                idempotency_key=idempotency_key,
            )
        )

    def get_customer(self, customer_id: str) -> Customer:
        return self._send(_calls.get_customer(customer_id))

    def entitlements(self, customer_id: str) -> Entitlements:
        """The customer's access and features over all of their subscriptions."""
        return self._send(_calls.customer_entitlements(customer_id))

    def create_subscription(
        self,
        *,
        customer_id: str,
        plan_id: str,
        currency: str,
        payment_method_id: str | None = None,
        trial: bool = False,
        backdate_start_date: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        """Start a subscription with a gateway token (``pm_…``) or a trial."""
        return self._send(
            _calls.create_subscription(
                customer_id=customer_id,
                plan_id=plan_id,
                currency=currency,
                payment_method_id=payment_method_id,
                trial=trial,
                backdate_start_date=backdate_start_date,
                idempotency_key=idempotency_key,
            )
        )

    def get_subscription(self, subscription_id: str) -> Subscription:
        return self._send(_calls.get_subscription(subscription_id))

    def access(self, subscription_id: str) -> SubscriptionAccess:
        """Whether the subscription grants access now, why, and its features."""
        return self._send(_calls.subscription_access(subscription_id))

    def invoices(self, subscription_id: str) -> list[Invoice]:
        """The subscription's finalized invoices, oldest first."""
        return self._send(_calls.subscription_invoices(subscription_id))

    def create_portal_session(self, customer_id: str) -> PortalSession:
        """A short-lived portal link for one customer (``url`` is a secret for them)."""
        return self._send(_calls.create_portal_session(customer_id))

    def create_endpoint(
        self, *, url: str, event_types: list[str], description: str = ""
    ) -> CreatedEndpoint:
        """Register a URL for events of ``event_types``; the answer's ``secret`` (shown
        only here) is what ``verify_event`` checks deliveries with."""
        return self._send(
            _calls.create_endpoint(url=url, event_types=event_types, description=description)
        )

    def list_endpoints(self) -> list[Endpoint]:
        return self._send(_calls.list_endpoints())

    def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return self._send(_calls.get_endpoint(endpoint_id))

    def rotate_endpoint_secret(
        self, endpoint_id: str, *, overlap_seconds: int = ONE_DAY_S
    ) -> RotatedSecret:
        """A new secret; the previous one keeps signing for ``overlap_seconds``."""
        return self._send(
            _calls.rotate_endpoint_secret(endpoint_id, overlap_seconds=overlap_seconds)
        )

    def disable_endpoint(self, endpoint_id: str, *, reason: str | None = None) -> Endpoint:
        return self._send(_calls.set_endpoint_status(endpoint_id, enabled=False, reason=reason))

    def enable_endpoint(self, endpoint_id: str, *, reason: str | None = None) -> Endpoint:
        return self._send(_calls.set_endpoint_status(endpoint_id, enabled=True, reason=reason))


class AsyncDunwell:
    """The server API, asynchronously; the same methods as ``Dunwell``, awaited."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT_S,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._api_key = api_key
        self.base_url = base_url
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)

    async def _send(self, call: Call[T]) -> T:
        try:
            response = await self._http.send(
                _calls.request(call, base_url=self.base_url, api_key=self._api_key)
            )
        except httpx.TransportError as err:
            raise _unreachable(err, call) from err
        return _calls.answer(call, response)

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def create_customer(
        self,
        *,
        email: str,
        name: str,
        address: Address | Mapping[str, str | None],
        tax_id: str | None = None,
        timezone: str = "UTC",
        segment: str = "default",
        idempotency_key: str | None = None,
    ) -> Customer:
        return await self._send(
            _calls.create_customer(
                email=email,
                name=name,
                address=address,
                tax_id=tax_id,
                timezone=timezone,
                segment=segment,
                idempotency_key=idempotency_key,
            )
        )

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._send(_calls.get_customer(customer_id))

    async def entitlements(self, customer_id: str) -> Entitlements:
        return await self._send(_calls.customer_entitlements(customer_id))

    async def create_subscription(
        self,
        *,
        customer_id: str,
        plan_id: str,
        currency: str,
        payment_method_id: str | None = None,
        trial: bool = False,
        backdate_start_date: datetime | None = None,
        idempotency_key: str | None = None,
    ) -> Subscription:
        return await self._send(
            _calls.create_subscription(
                customer_id=customer_id,
                plan_id=plan_id,
                currency=currency,
                payment_method_id=payment_method_id,
                trial=trial,
                backdate_start_date=backdate_start_date,
                idempotency_key=idempotency_key,
            )
        )

    async def get_subscription(self, subscription_id: str) -> Subscription:
        return await self._send(_calls.get_subscription(subscription_id))

    async def access(self, subscription_id: str) -> SubscriptionAccess:
        return await self._send(_calls.subscription_access(subscription_id))

    async def invoices(self, subscription_id: str) -> list[Invoice]:
        return await self._send(_calls.subscription_invoices(subscription_id))

    async def create_portal_session(self, customer_id: str) -> PortalSession:
        return await self._send(_calls.create_portal_session(customer_id))

    async def create_endpoint(
        self, *, url: str, event_types: list[str], description: str = ""
    ) -> CreatedEndpoint:
        return await self._send(
            _calls.create_endpoint(url=url, event_types=event_types, description=description)
        )

    async def list_endpoints(self) -> list[Endpoint]:
        return await self._send(_calls.list_endpoints())

    async def get_endpoint(self, endpoint_id: str) -> Endpoint:
        return await self._send(_calls.get_endpoint(endpoint_id))

    async def rotate_endpoint_secret(
        self, endpoint_id: str, *, overlap_seconds: int = ONE_DAY_S
    ) -> RotatedSecret:
        return await self._send(
            _calls.rotate_endpoint_secret(endpoint_id, overlap_seconds=overlap_seconds)
        )

    async def disable_endpoint(self, endpoint_id: str, *, reason: str | None = None) -> Endpoint:
        return await self._send(
            _calls.set_endpoint_status(endpoint_id, enabled=False, reason=reason)
        )

    async def enable_endpoint(self, endpoint_id: str, *, reason: str | None = None) -> Endpoint:
        return await self._send(
            _calls.set_endpoint_status(endpoint_id, enabled=True, reason=reason)
        )
