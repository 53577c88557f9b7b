"""Server API: subscriptions and their invoices (server API key)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import EngineDep, ServerKey, SettingsDep
from api.routes.customers import IdempotencyKey, responses
from api.schemas import InvoiceListOut, SubscriptionIn, SubscriptionOut
from api.services import customers as customer_service
from api.services import documents
from api.services import subscriptions as service
from api.services.payment_methods import check_token
from api.services.runtime import CatalogDep, GatewayDep, TemporalDep

router = APIRouter(prefix="/v1", tags=["server"])

SubscriptionIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


@router.post(
    "/subscriptions",
    status_code=201,
    response_model=SubscriptionOut,
    responses=responses(400, 403, 404, 409, 502, 503),
)
async def create_subscription(
    _auth: ServerKey,
    body: SubscriptionIn,
    engine: EngineDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    gateway: GatewayDep,
    temporal: TemporalDep,
    idempotency_key: IdempotencyKey = None,
) -> SubscriptionOut:
    """Start a subscription's workflow, with a card token (`pm_…`) or a trial."""
    customer = await customer_service.load_customer(engine=engine, customer_id=body.customer_id)

    async def check(gateway_customer_id: str, payment_method_id: str) -> None:
        await check_token(
            gateway=gateway,
            gateway_customer_id=gateway_customer_id,
            payment_method_id=payment_method_id,
        )

    record, client = await service.start_subscription(
        engine=engine,
        temporal=temporal,
        catalog=catalog,
        settings=settings,
        customer=customer,
        body=body,
        idempotency_key=idempotency_key,
        check_payment_method=check,
        now=datetime.now(UTC),
    )
    state = await service.state_after_start(client=client, record=record)
    return service.subscription_out(record, state, catalog)


@router.get(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    responses=responses(404, 503),
)
async def get_subscription(
    _auth: ServerKey,
    subscription_id: SubscriptionIdPath,
    engine: EngineDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
) -> SubscriptionOut:
    """Read a subscription's current state from its workflow."""
    record = await service.load_subscription(engine=engine, subscription_id=subscription_id)
    state = await service.query_state(client=await temporal.get(), record=record)
    return service.subscription_out(record, state, catalog)


@router.get(
    "/subscriptions/{subscription_id}/invoices",
    response_model=InvoiceListOut,
    responses=responses(404),
)
async def list_subscription_invoices(
    _auth: ServerKey, subscription_id: SubscriptionIdPath, engine: EngineDep
) -> InvoiceListOut:
    """List a subscription's finalized invoices, oldest first."""
    record = await service.load_subscription(engine=engine, subscription_id=subscription_id)
    items = await documents.list_invoices(
        engine=engine, customer_id=record.customer_id, subscription_id=record.id
    )
    return InvoiceListOut(items=items)
