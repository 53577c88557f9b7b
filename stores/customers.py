"""The customer and subscription directory: who exists, and which subscriptions are whose.

The subscription workflow is the source of truth for a subscription's state (status,
plan, period, cancellation); the ``subscriptions`` table only records that a
subscription exists, whose it is and under which workflow id it runs, so the API can
authorize and list without asking Temporal. The schema is made by revision
``0004_customers``.

Repository functions take an open ``Connection`` and never commit: the caller owns the
transaction (``with engine.begin() as conn: ...``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Connection,
    insert,
    select,
    update,
)
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError

from billing.catalog import BillingAddress, CustomerProfile
from stores.tables import customers, subscriptions


class DuplicateRecord(Exception):
    """An insert collided with an existing id or idempotency key."""


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: str
    email: str
    name: str
    address: BillingAddress
    tax_id: str | None
    timezone: str
    gateway_customer_id: str | None
    created_at: datetime
    idempotency_key: str | None = None
    request_hash: str | None = None
    segment: str = "default"

    def profile(self) -> CustomerProfile:
        return CustomerProfile(
            customer_id=self.id,
            email=self.email,
            name=self.name,
            address=self.address,
            tax_id=self.tax_id,
            timezone=self.timezone,
            segment=self.segment,
        )


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    id: str
    customer_id: str
    plan_id: str
    currency: str
    workflow_id: str
    created_at: datetime
    idempotency_key: str | None = None
    request_hash: str | None = None


def insert_customer(conn: Connection, record: CustomerRecord) -> None:
    address = record.address
    try:
        with conn.begin_nested():
            conn.execute(
                insert(customers).values(
                    id=record.id,
                    email=record.email,
                    name=record.name,
                    country=address.country,
                    state=address.state,
                    postal_code=address.postal_code,
                    city=address.city,
                    line1=address.line1,
                    line2=address.line2,
                    tax_id=record.tax_id,
                    timezone=record.timezone,
                    segment=record.segment,
                    gateway_customer_id=record.gateway_customer_id,
                    idempotency_key=record.idempotency_key,
                    request_hash=record.request_hash,
                    created_at=record.created_at,
                )
            )
    except IntegrityError as err:
        raise DuplicateRecord(f"customer {record.id} already exists") from err


def set_gateway_customer_id(conn: Connection, customer_id: str, gateway_customer_id: str) -> None:
    conn.execute(
        update(customers)
        .where(customers.c.id == customer_id)
        .values(gateway_customer_id=gateway_customer_id)
    )


def get_customer(conn: Connection, customer_id: str) -> CustomerRecord | None:
    row = conn.execute(select(customers).where(customers.c.id == customer_id)).mappings().first()
    return None if row is None else _customer(row)


def customer_by_idempotency_key(conn: Connection, key: str) -> CustomerRecord | None:
    row = (
        conn.execute(select(customers).where(customers.c.idempotency_key == key)).mappings().first()
    )
    return None if row is None else _customer(row)


def insert_subscription(conn: Connection, record: SubscriptionRecord) -> None:
    try:
        with conn.begin_nested():
            conn.execute(
                insert(subscriptions).values(
                    id=record.id,
                    customer_id=record.customer_id,
                    plan_id=record.plan_id,
                    currency=record.currency,
                    workflow_id=record.workflow_id,
                    idempotency_key=record.idempotency_key,
                    request_hash=record.request_hash,
                    created_at=record.created_at,
                )
            )
    except IntegrityError as err:
        raise DuplicateRecord(f"subscription {record.id} already exists") from err


def get_subscription(conn: Connection, subscription_id: str) -> SubscriptionRecord | None:
    row = (
        conn.execute(select(subscriptions).where(subscriptions.c.id == subscription_id))
        .mappings()
        .first()
    )
    return None if row is None else _subscription(row)


def subscription_of_customer(
    conn: Connection, customer_id: str, subscription_id: str
) -> SubscriptionRecord | None:
    """The subscription only if it belongs to ``customer_id``: the portal's ownership check."""
    row = (
        conn.execute(
            select(subscriptions).where(
                subscriptions.c.id == subscription_id,
                subscriptions.c.customer_id == customer_id,
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _subscription(row)


def subscription_by_idempotency_key(conn: Connection, key: str) -> SubscriptionRecord | None:
    row = (
        conn.execute(select(subscriptions).where(subscriptions.c.idempotency_key == key))
        .mappings()
        .first()
    )
    return None if row is None else _subscription(row)


def list_subscriptions(conn: Connection, customer_id: str) -> list[SubscriptionRecord]:
    rows = (
        conn.execute(
            select(subscriptions)
            .where(subscriptions.c.customer_id == customer_id)
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        .mappings()
        .all()
    )
    return [_subscription(row) for row in rows]


def subscriptions_of_gateway_customer(
    conn: Connection, gateway_customer_id: str
) -> list[SubscriptionRecord]:
    """Every subscription of the customer known to the gateway as ``gateway_customer_id``
    (where a customer-scoped gateway event goes)."""
    rows = (
        conn.execute(
            select(subscriptions)
            .join(customers, customers.c.id == subscriptions.c.customer_id)
            .where(customers.c.gateway_customer_id == gateway_customer_id)
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        .mappings()
        .all()
    )
    return [_subscription(row) for row in rows]


def _customer(row: RowMapping) -> CustomerRecord:
    return CustomerRecord(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        address=BillingAddress(
            country=row["country"],
            state=row["state"],
            postal_code=row["postal_code"],
            city=row["city"],
            line1=row["line1"],
            line2=row["line2"],
        ),
        tax_id=row["tax_id"],
        timezone=row["timezone"],
        segment=row["segment"],
        gateway_customer_id=row["gateway_customer_id"],
        created_at=row["created_at"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
    )


def _subscription(row: RowMapping) -> SubscriptionRecord:
    return SubscriptionRecord(
        id=row["id"],
        customer_id=row["customer_id"],
        plan_id=row["plan_id"],
        currency=row["currency"],
        workflow_id=row["workflow_id"],
        created_at=row["created_at"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
    )
