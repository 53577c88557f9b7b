"""The portal's billing notifications: listed newest first, dismissable by the customer.

A dismissed notification is kept (it is the record of what the customer was told) and
no longer listed."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from api.deps import EngineDep
from api.errors import ApiError
from api.routes.customers import responses
from api.routes.portal import Portal
from stores.notifications import dismiss, notifications_for_customer

router = APIRouter(prefix="/v1/portal", tags=["portal"])
NotificationKey = Annotated[str, Path(pattern=r"^[A-Za-z0-9_:.-]{1,255}$")]


class NotificationOut(BaseModel):
    key: str
    kind: str
    subject: str
    body: str
    invoice_id: str | None
    subscription_id: str | None
    created_at: datetime
    sent_at: datetime | None


class NotificationListOut(BaseModel):
    items: list[NotificationOut]


@router.get("/notifications", response_model=NotificationListOut, responses=responses())
async def list_my_notifications(portal: Portal, engine: EngineDep) -> NotificationListOut:
    """My billing notifications not yet dismissed (payment failures, reminders, actions
    needed), newest first."""
    rows = await asyncio.to_thread(
        lambda: notifications_for_customer(engine, portal.customer_id, include_dismissed=False)
    )
    return NotificationListOut(
        items=[
            NotificationOut(
                key=row.key,
                kind=row.kind,
                subject=row.subject,
                body=row.body,
                invoice_id=row.invoice_id,
                subscription_id=row.subscription_id,
                created_at=row.created_at,
                sent_at=row.sent_at,
            )
            for row in rows
        ]
    )


@router.post(
    "/notifications/{key}/dismiss",
    status_code=204,
    response_class=Response,
    responses=responses(404),
)
async def dismiss_notification(portal: Portal, key: NotificationKey, engine: EngineDep) -> Response:
    """Dismiss one of my notifications; dismissing it again changes nothing."""
    found = await asyncio.to_thread(
        lambda: dismiss(engine, portal.customer_id, key, now=datetime.now(UTC))
    )
    if not found:
        raise ApiError(404, "notification_not_found", f"no notification {key!r}")
    return Response(status_code=204)
