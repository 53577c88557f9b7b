"""Request rate limits: per API key, per portal session, per client address.

Pure ASGI, outermost, so a flood is answered before the card-data guard reads a body.
Who is counted:

- a request with a valid API key, server or ops: that key, by its id
  (``DUNWELL_RATE_LIMIT_SERVER``);
- a request with a valid portal session token: that session
  (``DUNWELL_RATE_LIMIT_PORTAL``), and the portal routes that write to the gateway
  (card set-up, payment method, plan change, payment confirmation) again under the
  tighter ``DUNWELL_RATE_LIMIT_PORTAL_GATEWAY``, so one session cannot spend the Stripe
  account's request budget that renewals need;
- the signed intakes (``/webhooks/stripe``, ``/v1/events``): the client address under
  ``DUNWELL_RATE_LIMIT_INTAKE``, high enough for a gateway's burst;
- everything else, a missing or invalid credential included: the client address
  (``DUNWELL_RATE_LIMIT_ANONYMOUS``). A made-up token therefore cannot buy a fresh
  budget; only a credential that verifies does.

Health checks are not limited. A refusal is 429 ``rate_limited`` with ``Retry-After``.
Counts live in this process (the ``limits`` library's moving windows in memory): with
several API processes behind a balancer, each allows the configured rate.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from datetime import UTC, datetime

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from api.deps import identify
from api.errors import error_response
from api.portal_tokens import InvalidPortalToken, verify_portal_token
from dunwell.settings import Settings

_UNLIMITED = frozenset({"/healthz", "/readyz"})
_INTAKES = frozenset({"/webhooks/stripe", "/v1/events"})
_PORTAL_GATEWAY_WRITES = re.compile(
    r"^/v1/portal/subscriptions/[^/]+/"
    r"(payment-method|payment-method/setup-intent|change-plan|confirm-payment)$"
)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:24]


class RateLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self._settings = settings
        self._server = parse(settings.rate_limit_server)
        self._portal = parse(settings.rate_limit_portal)
        self._portal_gateway = parse(settings.rate_limit_portal_gateway)
        self._intake = parse(settings.rate_limit_intake)
        self._anonymous = parse(settings.rate_limit_anonymous)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._settings.rate_limits_enabled:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path in _UNLIMITED:
            await self.app(scope, receive, send)
            return
        for item, identity in self._buckets(scope, path):
            if not await self._limiter.hit(item, identity):
                stats = await self._limiter.get_window_stats(item, identity)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
                response = error_response(
                    429,
                    "rate_limited",
                    f"too many requests; allowed {item}, try again in {retry_after} s",
                    headers={"Retry-After": str(retry_after)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _buckets(self, scope: Scope, path: str) -> list[tuple[RateLimitItem, str]]:
        address = _client_address(scope)
        if path in _INTAKES:
            return [(self._intake, f"intake:{address}")]
        token = _bearer(scope)
        if token is not None:
            principal = identify(self._settings, token)
            if principal is not None:
                return [(self._server, f"{principal.role}:{principal.key_id}")]
            if path.startswith("/v1/portal/") and self._is_portal_session(token):
                session = f"portal:{_digest(token)}"
                buckets = [(self._portal, session)]
                if scope["method"] == "POST" and _PORTAL_GATEWAY_WRITES.match(path):
                    buckets.append((self._portal_gateway, f"{session}:gateway"))
                return buckets
        return [(self._anonymous, f"address:{address}")]

    def _is_portal_session(self, token: str) -> bool:
        secret = self._settings.portal_session_secret.get_secret_value()
        try:
            verify_portal_token(token, secret=secret, now=datetime.now(UTC))
        except InvalidPortalToken:
            return False
        return True


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
