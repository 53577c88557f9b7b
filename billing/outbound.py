"""Outbound events: what the SaaS product is told, and the rules every sender shares.

The event types (``EVENT_TYPES``), the stable id of an event derived from the key of
the change that caused it (``event_id``: a retried step derives the same id, so the
outbox keeps it once), and the retry schedule of a delivery (``next_attempt_delay``):
exponential backoff with full jitter drawn from the delivery's own identity, capped per
wait, given up after ``GIVE_UP_AFTER`` (the endpoint is then marked failing); and which
endpoint URLs may receive events (``check_url``, ``check_addresses``: public addresses
only, loopback too outside production).
"""

from __future__ import annotations

import hashlib
import ipaddress
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

EVENT_TYPES: tuple[str, ...] = (
    "subscription.created",
    "subscription.updated",
    "subscription.canceled",
    "access.granted",
    "access.revoked",
    "invoice.finalized",
    "invoice.paid",
    "invoice.payment_failed",
    "credit_note.issued",
    "dunning.started",
    "dunning.recovered",
    "dunning.ended",
    "review.opened",
    "review.resolved",
    "reconciliation.exception_opened",
)

_NAMESPACE = uuid.UUID("5d1c3f0e-7a55-4c53-9a3c-2f0d8f3c6e17")

FIRST_RETRY = timedelta(seconds=5)
LONGEST_WAIT = timedelta(hours=6)
GIVE_UP_AFTER = timedelta(days=3)


class UnknownEventType(ValueError):
    """An event type Dunwell does not send."""


def check_event_types(types: list[str]) -> list[str]:
    """The types, de-duplicated in their order; refuses an empty list or an unknown type."""
    if not types:
        raise UnknownEventType("at least one event type is needed")
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise UnknownEventType(f"unknown event types: {', '.join(sorted(set(unknown)))}")
    return list(dict.fromkeys(types))


# Ids use letters and digits alike so that they never hold a long digit run: the API's
# card-data guard scans paths too, and a hex id holds a Luhn-valid run of 13 or more
# digits about once in a few hundred (an ops replay of that event would be refused).
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ID_LENGTH = 26


def _symbols(number: int) -> str:
    out = []
    for _ in range(ID_LENGTH):
        number, index = divmod(number, len(_ID_ALPHABET))
        out.append(_ID_ALPHABET[index])
    return "".join(out)


def event_id(key: str) -> str:
    """The event's id, the same for every step that derives it from the same key."""
    return f"evt_{_symbols(uuid.uuid5(_NAMESPACE, key).int)}"


def endpoint_id(random_bytes: bytes) -> str:
    """An endpoint's id from 16 random bytes."""
    return f"we_{_symbols(int.from_bytes(random_bytes))}"


def next_attempt_delay(delivery_key: str, attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: full jitter over an
    exponential ceiling (FIRST_RETRY * 2**(n-1), capped at LONGEST_WAIT), drawn
    deterministically from the delivery, so a replayed decision is the same."""
    if attempts < 1:
        raise ValueError("attempts counts failed attempts, from 1")
    ceiling = min(FIRST_RETRY * (1 << min(attempts - 1, 32)), LONGEST_WAIT)
    digest = hashlib.sha256(f"{delivery_key}:{attempts}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    # Half the ceiling at least, so waits still grow; the other half is jitter.
    return ceiling / 2 + ceiling / 2 * fraction


class RefusedUrl(ValueError):
    """An endpoint URL Dunwell will not deliver to; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_url(url: str) -> tuple[str, int]:
    """The host and port of an endpoint URL: http or https, a host, no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedUrl("invalid_url", "the URL must be http(s)://host/...")
    if parts.username or parts.password:
        raise RefusedUrl("invalid_url", "the URL must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise RefusedUrl("invalid_url", "the URL's port is not a number") from exc
    return parts.hostname, port


def check_addresses(addresses: list[str], *, allow_loopback: bool) -> None:
    """Refuse a host that resolves to anything but public addresses (every address it
    resolves to counts: a receiver must not reach into the network Dunwell runs in).
    ``allow_loopback`` (dev and test) lets the local demo receiver through."""
    if not addresses:
        raise RefusedUrl("url_not_allowed", "the URL's host does not resolve")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        if address.is_loopback and allow_loopback:
            continue
        if not address.is_global or address.is_multicast:
            raise RefusedUrl(
                "url_not_allowed", "the URL resolves to a private, loopback or reserved address"
            )
