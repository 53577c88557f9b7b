"""Server API: customers and portal sessions (server API key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Path

from api.audit import ServerAudit
from api.deps import EngineDep, ServerKey, SettingsDep
from api.errors import ERROR_RESPONSES, ErrorResponse
from api.portal_tokens import issue_portal_token
from api.schemas import CustomerIn, CustomerOut, PortalSessionIn, PortalSessionOut
from api.services import customers as service
from api.services.runtime import GatewayDep

router = APIRouter(prefix="/v1", tags=["server"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Retries with the same key return the first result",
    ),
]
CustomerIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "Card data in the body (refused unread)",
        403: "An ops key writing through the server API (server_key_required)",
        404: "No such object (or not yours)",
        409: "Refused by the subscription's current state; `code` says why",
        502: "The payment gateway refused or failed the request",
        503: "Temporal or the gateway is unreachable; nothing was changed (Retry-After)",
    }
    extra: dict[int | str, dict[str, Any]] = {
        c: {"model": ErrorResponse, "description": described[c]} for c in codes
    }
    return {**ERROR_RESPONSES, **extra}


@router.post(
    "/customers",
    status_code=201,
    response_model=CustomerOut,
    responses=responses(400, 403, 409, 502, 503),
)
async def create_customer(
    _auth: ServerKey,
    body: CustomerIn,
    engine: EngineDep,
    gateway: GatewayDep,
    idempotency_key: IdempotencyKey = None,
) -> CustomerOut:
    """Create a customer and its gateway customer."""
    record = await service.create_customer(
        engine=engine,
        gateway=gateway,
        body=body,
        idempotency_key=idempotency_key,
        now=datetime.now(UTC),
    )
    return service.customer_out(record)


@router.get("/customers/{customer_id}", response_model=CustomerOut, responses=responses(404))
async def get_customer(
    _auth: ServerKey, customer_id: CustomerIdPath, engine: EngineDep
) -> CustomerOut:
    """Read a customer."""
    return service.customer_out(await service.load_customer(engine=engine, customer_id=customer_id))


@router.post(
    "/portal-sessions",
    status_code=201,
    response_model=PortalSessionOut,
    responses=responses(400, 403, 404),
)
async def create_portal_session(
    audit: ServerAudit, body: PortalSessionIn, engine: EngineDep, settings: SettingsDep
) -> PortalSessionOut:
    """Issue a short-lived portal session token scoped to one customer."""
    customer = await service.load_customer(engine=engine, customer_id=body.customer_id)
    issued = issue_portal_token(
        customer.id, secret=settings.portal_session_secret.get_secret_value(), now=datetime.now(UTC)
    )
    # The mint is recorded before the token is handed out; the row never holds the token.
    await audit.append(
        audit.entry(
            "portal_session.mint",
            f"customer:{customer.id}",
            after={"expires_at": issued.claims.expires_at.isoformat()},
        )
    )
    base = settings.public_base_url.rstrip("/")
    return PortalSessionOut(
        token=issued.token,
        url=f"{base}/portal?{urlencode({'session': issued.token})}",
        expires_at=issued.claims.expires_at,
    )
