"""Portal session tokens: scoped, short-lived, unforgeable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from api.portal_tokens import (
    DEFAULT_LIFETIME,
    InvalidPortalToken,
    issue_portal_token,
    verify_portal_token,
)

SECRET = "s3cret-for-tests"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_a_token_names_its_customer_until_it_expires() -> None:
    issued = issue_portal_token("cust_a", secret=SECRET, now=NOW)
    assert issued.claims.expires_at == NOW + DEFAULT_LIFETIME
    claims = verify_portal_token(issued.token, secret=SECRET, now=NOW + timedelta(minutes=14))
    assert claims.customer_id == "cust_a"
    assert claims.nonce == issued.claims.nonce
    with pytest.raises(InvalidPortalToken, match="expired"):
        verify_portal_token(issued.token, secret=SECRET, now=NOW + DEFAULT_LIFETIME)


def test_two_tokens_for_one_customer_differ() -> None:
    first = issue_portal_token("cust_a", secret=SECRET, now=NOW)
    second = issue_portal_token("cust_a", secret=SECRET, now=NOW)
    assert first.token != second.token


def test_another_secret_does_not_verify() -> None:
    issued = issue_portal_token("cust_a", secret=SECRET, now=NOW)
    with pytest.raises(InvalidPortalToken, match="signature"):
        verify_portal_token(issued.token, secret="other", now=NOW)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_payload_changed_to_another_customer_is_refused() -> None:
    issued = issue_portal_token("cust_a", secret=SECRET, now=NOW)
    payload, signature = issued.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["c"] = "cust_b"
    forged = f"{_b64(json.dumps(claims, separators=(',', ':')).encode())}.{signature}"
    with pytest.raises(InvalidPortalToken, match="signature"):
        verify_portal_token(forged, secret=SECRET, now=NOW)


def test_a_later_expiry_cannot_be_written_in() -> None:
    issued = issue_portal_token("cust_a", secret=SECRET, now=NOW)
    payload, signature = issued.token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["e"] += 86400
    forged = f"{_b64(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(InvalidPortalToken):
        verify_portal_token(forged, secret=SECRET, now=NOW + timedelta(hours=2))


@pytest.mark.parametrize(
    "token", ["", ".", "abc", "abc.", ".abc", "a.b.c", "é.é", "eyJ9.AAAA", "!!!.???"]
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidPortalToken):
        verify_portal_token(token, secret=SECRET, now=NOW)


def test_lifetime_is_bounded() -> None:
    with pytest.raises(ValueError, match="lifetime"):
        issue_portal_token("cust_a", secret=SECRET, now=NOW, lifetime=timedelta(days=1))
    with pytest.raises(ValueError, match="lifetime"):
        issue_portal_token("cust_a", secret=SECRET, now=NOW, lifetime=timedelta(0))
    with pytest.raises(ValueError, match="aware"):
        issue_portal_token("cust_a", secret=SECRET, now=NOW.replace(tzinfo=None))
