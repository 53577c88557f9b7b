"""Relay intake: gateway events forwarded with a per-subscription sequence number.

Authentication is an HMAC-SHA256 over the raw body with ``DUNWELL_RELAY_SECRET``, in the
header ``Dunwell-Signature: t=<unix seconds>,v1=<hex>`` where the MAC covers
``f"{t}.{body}"`` (Stripe's scheme, so relays can reuse its signing code). Several ``v1``
values may be sent while the secret rotates; ``t`` must be within 300 s of our clock.
Dedupe, parking and delivery are the Stripe intake's (``api.routes.webhooks.intake``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from api.deps import EngineDep, SettingsDep
from api.errors import ApiError
from api.routes.webhooks import INTAKE_RESPONSES, SIGNATURE_TOLERANCE_SECONDS, IntakeAck, intake
from billing.events import MalformedEvent, relay_event

router = APIRouter(tags=["webhooks"])

SIGNATURE_HEADER = "Dunwell-Signature"


class RelayEventIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(min_length=1, max_length=255)
    subscription_id: str | None = Field(default=None, max_length=255)
    sequence: int = Field(ge=1, description="Per subscription, starting at 1, no reuse")
    type: str = Field(min_length=1, max_length=128, description="Gateway event type")
    object: dict[str, Any] = Field(description="The gateway object the event is about")
    created: AwareDatetime


@router.post(
    "/v1/events",
    response_model=IntakeAck,
    response_model_exclude_none=True,
    responses=INTAKE_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RelayEventIn.model_json_schema()}},
        }
    },
)
async def relay_events(
    request: Request,
    settings: SettingsDep,
    engine: EngineDep,
    signature: Annotated[str | None, Header(alias=SIGNATURE_HEADER)] = None,
) -> IntakeAck:
    """A relayed gateway event (HMAC-signed); applied in the relay's sequence order."""
    raw = await request.body()
    verify_relay_signature(
        raw, signature, settings.relay_secret.get_secret_value(), now=time.time()
    )
    try:
        body = RelayEventIn.model_validate_json(raw)
    except ValidationError as err:
        details = [{"loc": [str(part) for part in e["loc"]], "msg": e["msg"]} for e in err.errors()]
        raise ApiError(
            422, "invalid_request", "the relay event is malformed", details=details
        ) from None
    try:
        outcome = relay_event(
            event_id=body.event_id,
            subscription_id=body.subscription_id,
            sequence=body.sequence,
            event_type=body.type,
            obj=body.object,
            created=body.created,
        )
    except MalformedEvent as err:
        raise ApiError(422, "invalid_request", str(err)) from err
    return await intake(request, settings, engine, outcome, raw.decode("utf-8"))


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Dunwell-Signature`` value for a body (what a relay sends)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_relay_signature(body: bytes, header: str | None, secret: str, *, now: float) -> None:
    if not header:
        raise ApiError(400, "missing_signature", f"the {SIGNATURE_HEADER} header is required")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        # Header values arrive as latin-1: "²" is a digit to str.isdigit, not to int().
        if key == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value.isascii():
            candidates.append(value)
    if timestamp is None or not candidates:
        raise ApiError(400, "invalid_signature", f"the {SIGNATURE_HEADER} header is malformed")
    expected = sign(body, secret, timestamp).rsplit("v1=", 1)[1]
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise ApiError(400, "invalid_signature", "the relay signature does not verify")
    if abs(now - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        raise ApiError(400, "stale_signature", "the relay signature is too old or too new")
