"""``verify_event``: a Standard Webhooks delivery signed with the endpoint's secret
verifies and comes back typed; a wrong secret, a changed body, a stale or missing
header, or a body that is not an event raises ``InvalidEventError``."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from dunwell.client import Event, InvalidEventError, verify_event

SECRET = "whsec_" + base64.b64encode(b"dunwell-test-endpoint-secret-32b").decode()
OTHER = "whsec_" + base64.b64encode(b"some-other-endpoint-secret-32by!").decode()
BODY = {
    "id": "evt_01",
    "type": "subscription.updated",
    "created": "2026-12-08T01:00:00Z",
    "data": {"subscription_id": "sub_1", "status": "past_due"},
}


def signed(
    body: dict[str, object] | bytes, *, secret: str = SECRET, at: datetime | None = None
) -> tuple[bytes, dict[str, str]]:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    at = at or datetime.now(UTC)
    signature = Webhook(secret).sign("msg_01", at, payload)
    headers = {
        "webhook-id": "msg_01",
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }
    return payload, headers


def test_a_signed_event_verifies_and_is_typed() -> None:
    payload, headers = signed(BODY)
    event = verify_event(payload, headers, SECRET)
    assert event == Event(
        id="evt_01",
        type="subscription.updated",
        created=datetime(2026, 12, 8, 1, 0, tzinfo=UTC),
        data={"subscription_id": "sub_1", "status": "past_due"},
    )
    # Header names in any case, the body as text.
    upper = {k.title(): v for k, v in headers.items()}
    assert verify_event(payload.decode(), upper, SECRET) == event


def test_the_delivery_id_and_a_unix_time_fill_in() -> None:
    body = {"type": "invoice.paid", "timestamp": 1_765_155_600, "data": {}}
    event = verify_event(*signed(body), SECRET)
    assert event.id == "msg_01"
    assert event.created == datetime.fromtimestamp(1_765_155_600, UTC)


@pytest.mark.parametrize(
    "tamper",
    ["other_secret", "changed_body", "stale", "future", "no_signature", "bad_timestamp"],
)
def test_what_does_not_verify_is_refused(tamper: str) -> None:
    payload, headers = signed(BODY)
    secret = SECRET
    if tamper == "other_secret":
        secret = OTHER
    elif tamper == "changed_body":
        payload = payload.replace(b"past_due", b"active")
    elif tamper == "stale":
        payload, headers = signed(BODY, at=datetime.now(UTC) - timedelta(minutes=6))
    elif tamper == "future":
        payload, headers = signed(BODY, at=datetime.now(UTC) + timedelta(minutes=6))
    elif tamper == "no_signature":
        del headers["webhook-signature"]
    elif tamper == "bad_timestamp":
        headers["webhook-timestamp"] = "yesterday"
    with pytest.raises(InvalidEventError) as caught:
        verify_event(payload, headers, secret)
    assert caught.value.code == "invalid_signature" and caught.value.status is None


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_a"])
def test_a_secret_that_is_not_one_is_refused(secret: str) -> None:
    payload, headers = signed(BODY)
    with pytest.raises(InvalidEventError) as caught:
        verify_event(payload, headers, secret)
    assert caught.value.code == "invalid_secret"


@pytest.mark.parametrize(
    "body",
    [
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps({"id": "evt_1", "data": {}, "created": "2026-12-08T01:00:00Z"}).encode(),
        json.dumps({"id": "evt_1", "type": "x", "created": "2026-12-08T01:00:00Z"}).encode(),
        json.dumps({"id": "evt_1", "type": "x", "data": {}}).encode(),
        json.dumps(
            {"id": "evt_1", "type": "x", "data": {}, "created": "2026-12-08T01:00"}
        ).encode(),
        json.dumps({"id": "evt_1", "type": "x", "data": [], "created": 1}).encode(),
    ],
)
def test_a_verified_body_that_is_not_an_event_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidEventError) as caught:
        verify_event(*signed(body), SECRET)
    assert caught.value.code == "invalid_event"
