"""Creating and reading customers.

Order of writes: the gateway customer is created first, with an idempotency key derived
from our customer id, then the directory row is inserted with its gateway id. A failure
in between leaves at most an unused gateway customer, never a directory row without
one. With an ``Idempotency-Key`` header the customer id is derived from the key, so a
retry reaches the same gateway customer and finds the row.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import string
from datetime import datetime

from sqlalchemy import Engine

from activities.stripe_gateway import StripeGateway
from api.errors import ApiError
from api.schemas import AddressOut, CustomerIn, CustomerOut
from billing.catalog import BillingAddress
from billing.gateway import GatewayError, GatewayUnavailable
from stores import customers as directory
from stores.customers import CustomerRecord
from tax import InvalidVatIdError, validate_vat_id
from tax.places import EU_MEMBER_STATES

CUSTOMER_PREFIX = "cust_"


# Ids use letters and digits alike so they never hold a long digit run: the card-data
# guard refuses bodies with a Luhn-valid run of 13+ digits, and a hex id has one in a few
# hundred. With 10 digits in 36 symbols a 13-digit run is about 1 in 10 million.
_ID_ALPHABET = string.ascii_lowercase + string.digits
ID_LENGTH = 24


def new_id(prefix: str, idempotency_key: str | None, scope: str) -> str:
    """A random id, or one derived from the idempotency key (a retry gets the same id)."""
    if idempotency_key is None:
        return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    number = int.from_bytes(hashlib.sha256(f"{scope}:{idempotency_key}".encode()).digest())
    symbols = []
    for _ in range(ID_LENGTH):
        number, index = divmod(number, len(_ID_ALPHABET))
        symbols.append(_ID_ALPHABET[index])
    return prefix + "".join(symbols)


def request_hash(body: object) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def customer_out(record: CustomerRecord) -> CustomerOut:
    a = record.address
    return CustomerOut(
        id=record.id,
        email=record.email,
        name=record.name,
        address=AddressOut(
            country=a.country,
            state=a.state,
            postal_code=a.postal_code,
            city=a.city,
            line1=a.line1,
            line2=a.line2,
        ),
        tax_id=record.tax_id,
        timezone=record.timezone,
        segment=record.segment,
        gateway_customer_id=record.gateway_customer_id,
        created_at=record.created_at,
    )


def _checked_tax_id(body: CustomerIn) -> str | None:
    if body.tax_id is None:
        return None
    if body.address.country in EU_MEMBER_STATES:
        try:
            return validate_vat_id(body.tax_id)
        except InvalidVatIdError as err:
            raise ApiError(422, "invalid_tax_id", str(err)) from None
    return body.tax_id


def _replay(existing: CustomerRecord, digest: str) -> CustomerRecord:
    if existing.request_hash != digest:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different request",
        )
    return existing


async def create_customer(
    *,
    engine: Engine,
    gateway: StripeGateway,
    body: CustomerIn,
    idempotency_key: str | None,
    now: datetime,
) -> CustomerRecord:
    tax_id = _checked_tax_id(body)
    digest = request_hash(body.model_dump())
    if idempotency_key is not None:
        existing = await asyncio.to_thread(_by_key, engine, idempotency_key)
        if existing is not None:
            return _replay(existing, digest)
    customer_id = new_id(CUSTOMER_PREFIX, idempotency_key, "customer")
    try:
        address = BillingAddress(
            country=body.address.country,
            state=body.address.state,
            postal_code=body.address.postal_code,
            city=body.address.city,
            line1=body.address.line1,
            line2=body.address.line2,
        )
    except ValueError as err:
        raise ApiError(422, "invalid_request", str(err)) from None
    try:
        gateway_id = await gateway.create_customer(
            idempotency_key=f"dunwell:customer:{customer_id}:create",
            email=body.email,
            name=body.name,
            metadata={"dunwell_customer_id": customer_id},
        )
    except GatewayError as err:
        raise gateway_error(err) from err
    record = CustomerRecord(
        id=customer_id,
        email=body.email,
        name=body.name,
        address=address,
        tax_id=tax_id,
        timezone=body.timezone,
        segment=body.segment,
        gateway_customer_id=gateway_id,
        created_at=now,
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    try:
        await asyncio.to_thread(_insert, engine, record)
    except directory.DuplicateRecord:
        # A concurrent retry with the same key got there first.
        existing = (
            await asyncio.to_thread(_by_key, engine, idempotency_key) if idempotency_key else None
        )
        if existing is None:
            raise
        return _replay(existing, digest)
    return record


async def load_customer(*, engine: Engine, customer_id: str) -> CustomerRecord:
    record = await asyncio.to_thread(_get, engine, customer_id)
    if record is None:
        raise ApiError(404, "customer_not_found", f"no customer {customer_id!r}")
    return record


def gateway_error(err: GatewayError) -> ApiError:
    if isinstance(err, GatewayUnavailable):
        return ApiError(
            503,
            "gateway_unavailable",
            "the payment gateway is not reachable; nothing was changed",
            headers={"Retry-After": "5"},
        )
    return ApiError(
        502,
        "gateway_error",
        f"the payment gateway refused or failed the request ({type(err).__name__})",
    )


def _by_key(engine: Engine, key: str) -> CustomerRecord | None:
    with engine.connect() as conn:
        return directory.customer_by_idempotency_key(conn, key)


def _get(engine: Engine, customer_id: str) -> CustomerRecord | None:
    with engine.connect() as conn:
        return directory.get_customer(conn, customer_id)


def _insert(engine: Engine, record: CustomerRecord) -> None:
    with engine.begin() as conn:
        directory.insert_customer(conn, record)
