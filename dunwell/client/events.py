"""Verifying an event Dunwell sent to the SaaS backend (Standard Webhooks).

Dunwell signs each delivery per the Standard Webhooks specification: the
``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers over the raw
body, with the endpoint's ``whsec_…`` secret. ``verify_event`` checks the signature and
the timestamp (five minutes either way, the specification's tolerance) with the
``standardwebhooks`` package and returns the event typed; anything else raises
``InvalidEventError`` and nothing of the body should be trusted.

Pass the body exactly as received (bytes), not re-serialized JSON. The body is
``{"id", "type", "timestamp", "data"}`` (``activities.outbound_http``); ``timestamp`` is
the event's ``created``.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from standardwebhooks import Webhook
from standardwebhooks.webhooks import EmptyWebhookSecretError, WebhookVerificationError

from dunwell.client.errors import InvalidEventError
from dunwell.client.models import Event


def verify_event(payload: bytes | str, headers: Mapping[str, str], secret: str) -> Event:
    """The verified event; ``InvalidEventError`` when the secret, the signature, the
    timestamp or the body is not right."""
    try:
        webhook = Webhook(secret)
    except (EmptyWebhookSecretError, binascii.Error, ValueError, RuntimeError) as err:
        raise InvalidEventError(
            "the webhook secret is not a whsec_… secret", code="invalid_secret"
        ) from err
    try:
        body = webhook.verify(payload, dict(headers))
    except WebhookVerificationError as err:
        raise InvalidEventError(
            f"the event did not verify: {err}", code="invalid_signature"
        ) from err
    except (ValueError, TypeError) as err:  # verified, but not JSON
        raise InvalidEventError("the event body is not JSON", code="invalid_event") from err
    return _event(body, {k.lower(): v for k, v in headers.items()})


def _event(body: Any, headers: Mapping[str, str]) -> Event:
    if not isinstance(body, dict):
        raise InvalidEventError("the event body is not a JSON object", code="invalid_event")
    created = body.get("created", body.get("timestamp"))
    if isinstance(created, int | float) and not isinstance(created, bool):
        created = datetime.fromtimestamp(created, UTC)
    try:
        return Event(
            id=body.get("id") or headers["webhook-id"],
            type=body["type"],
            created=created,
            data=body["data"],
        )
    except (KeyError, ValidationError) as err:
        raise InvalidEventError(
            "the event lacks id, type, created or data", code="invalid_event"
        ) from err
