"""Portal session tokens: short-lived, scoped to one customer, signed with HMAC-SHA256.

A token is ``<payload>.<signature>``, both unpadded base64url. The payload is the JSON
object ``{"c": customer id, "e": expiry (Unix seconds), "n": random nonce}``; the
signature is HMAC-SHA256 under ``settings.portal_session_secret`` of the fixed prefix
``dunwell-portal.v1.`` followed by the encoded payload, so a token signed for another
purpose with the same secret never verifies here. Verification compares signatures in
constant time before it reads the payload.

Tokens are bearer credentials: anyone holding one acts as that customer until it
expires, so the lifetime is short (15 minutes by default) and nothing logs them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_LIFETIME = timedelta(minutes=15)
MAX_LIFETIME = timedelta(hours=1)
_PURPOSE = b"dunwell-portal.v1."


class InvalidPortalToken(Exception):
    """Forged, malformed or expired; the message says which, for logs only."""


@dataclass(frozen=True, slots=True)
class PortalClaims:
    customer_id: str
    expires_at: datetime
    nonce: str


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    claims: PortalClaims


def issue_portal_token(
    customer_id: str,
    *,
    secret: str,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> IssuedToken:
    if not customer_id:
        raise ValueError("customer_id is required")
    if not timedelta(0) < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be in (0, {MAX_LIFETIME}], got {lifetime}")
    if now.tzinfo is None:
        raise ValueError("now must be an aware UTC datetime")
    expires = int((now + lifetime).timestamp())
    payload = {"c": customer_id, "e": expires, "n": secrets.token_hex(16)}
    encoded = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
    token = f"{encoded}.{_b64encode(_sign(secret, encoded))}"
    claims = PortalClaims(
        customer_id=customer_id,
        expires_at=datetime.fromtimestamp(expires, UTC),
        nonce=str(payload["n"]),
    )
    return IssuedToken(token=token, claims=claims)


def verify_portal_token(token: str, *, secret: str, now: datetime) -> PortalClaims:
    encoded, sep, signature = token.partition(".")
    if not sep or not encoded or not signature:
        raise InvalidPortalToken("malformed token")
    try:
        given = _b64decode(signature)
    except ValueError:
        raise InvalidPortalToken("malformed signature") from None
    if not hmac.compare_digest(given, _sign(secret, encoded)):
        raise InvalidPortalToken("bad signature")
    try:
        payload = json.loads(_b64decode(encoded))
        customer_id, expires, nonce = payload["c"], payload["e"], payload["n"]
    except (ValueError, KeyError, TypeError):
        raise InvalidPortalToken("malformed payload") from None
    if not isinstance(customer_id, str) or type(expires) is not int or not isinstance(nonce, str):
        raise InvalidPortalToken("malformed payload")
    if now.timestamp() >= expires:
        raise InvalidPortalToken("expired")
    return PortalClaims(
        customer_id=customer_id, expires_at=datetime.fromtimestamp(expires, UTC), nonce=nonce
    )


def _sign(secret: str, encoded_payload: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE + encoded_payload.encode(), hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as err:
        raise ValueError("not base64url") from err
