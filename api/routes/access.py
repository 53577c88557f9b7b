"""Server API: access and entitlements (server API key), read from the subscription workflows'
state and computed by ``billing.entitlements.access``, the function the workflows use."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import EngineDep, ServerKey
from api.routes.customers import CustomerIdPath, responses
from api.routes.subscriptions import SubscriptionIdPath
from api.schemas import AccessOut
from api.services import customers as customer_service
from api.services import subscriptions as service
from api.services.runtime import CatalogDep, TemporalDep

router = APIRouter(prefix="/v1", tags=["server"])


class SubscriptionAccessOut(AccessOut):
    subscription_id: str
    customer_id: str
    plan_id: str
    status: str


class EntitlementsOut(BaseModel):
    customer_id: str
    has_access: bool = Field(description="Whether any of the customer's subscriptions grants it")
    features: dict[str, bool | int] = Field(
        description="Features in force across the customer's subscriptions (a flag is on if "
        "any grants it; a limit is the largest granted)"
    )
    subscriptions: list[SubscriptionAccessOut]


@router.get(
    "/subscriptions/{subscription_id}/access",
    response_model=SubscriptionAccessOut,
    responses=responses(404, 503),
)
async def get_subscription_access(
    _auth: ServerKey,
    subscription_id: SubscriptionIdPath,
    engine: EngineDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
) -> SubscriptionAccessOut:
    """Whether the subscription grants access now, why, its features and the next change."""
    record = await service.load_subscription(engine=engine, subscription_id=subscription_id)
    state = await service.query_state(client=await temporal.get(), record=record)
    access = service.access_out(state.access(datetime.now(UTC), catalog))
    return SubscriptionAccessOut(
        **access.model_dump(),
        subscription_id=record.id,
        customer_id=record.customer_id,
        plan_id=state.plan_id or record.plan_id,
        status=str(state.status),
    )


@router.get(
    "/customers/{customer_id}/entitlements",
    response_model=EntitlementsOut,
    responses=responses(404, 503),
)
async def get_customer_entitlements(
    _auth: ServerKey,
    customer_id: CustomerIdPath,
    engine: EngineDep,
    catalog: CatalogDep,
    temporal: TemporalDep,
) -> EntitlementsOut:
    """The customer's access and features, over all of their subscriptions."""
    await customer_service.load_customer(engine=engine, customer_id=customer_id)
    records = await service.list_subscriptions(engine=engine, customer_id=customer_id)
    items: list[SubscriptionAccessOut] = []
    if records:
        client = await temporal.get()
        states = await asyncio.gather(
            *(service.query_state(client=client, record=r) for r in records)
        )
        now = datetime.now(UTC)
        for record, state in zip(records, states, strict=True):
            access = service.access_out(state.access(now, catalog))
            items.append(
                SubscriptionAccessOut(
                    **access.model_dump(),
                    subscription_id=record.id,
                    customer_id=record.customer_id,
                    plan_id=state.plan_id or record.plan_id,
                    status=str(state.status),
                )
            )
    return EntitlementsOut(
        customer_id=customer_id,
        has_access=any(item.has_access for item in items),
        features=merge_features([item.features for item in items if item.has_access]),
        subscriptions=items,
    )


def merge_features(granted: list[dict[str, bool | int]]) -> dict[str, bool | int]:
    merged: dict[str, bool | int] = {}
    for features in granted:
        for name, value in features.items():
            held = merged.get(name)
            if held is None:
                merged[name] = value
            elif isinstance(value, bool) or isinstance(held, bool):
                merged[name] = bool(held) or bool(value)
            else:
                merged[name] = max(held, value)
    return merged
