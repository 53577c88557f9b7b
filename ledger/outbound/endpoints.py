"""Endpoints: where the SaaS product receives events, and the secrets that sign them.

A secret is generated here (``whsec_`` + base64 of 24 random bytes, the Standard
Webhooks format). Rotating makes a new current secret and keeps the old one signing
until the overlap ends, so a receiver can switch at its own pace: during the overlap
every delivery carries a signature by each valid secret. Ops disable and enable an
endpoint; deliveries given up mark it ``failing`` (``ledger.outbound.delivery``), and
enabling it again is how ops re-arm it: its pending deliveries are due at once.

Each function is one short transaction on the engine it is given.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, or_, select, update

from billing.outbound import check_event_types
from billing.outbound import endpoint_id as new_endpoint_id
from ledger import unit_of_work
from ledger.entries import require_aware_utc
from ledger.outbound.tables import outbound_deliveries as _deliveries
from ledger.outbound.tables import outbound_endpoint_secrets as _secrets
from ledger.outbound.tables import outbound_endpoints as _endpoints

EndpointStatus = Literal["enabled", "disabled", "failing"]

MAX_OVERLAP = timedelta(days=7)


class EndpointNotFound(LookupError):
    """No endpoint has this id."""


class EndpointStateError(ValueError):
    """The endpoint is not in a state that allows the change."""


@dataclass(frozen=True)
class Endpoint:
    id: str
    url: str
    event_types: list[str]
    description: str
    status: EndpointStatus
    created_at: datetime
    status_changed_at: datetime
    status_reason: str | None


@dataclass(frozen=True)
class SigningSecret:
    secret: str
    created_at: datetime
    expires_at: datetime | None  # None: the current secret


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(
        id=row.id,
        url=row.url,
        event_types=list(row.event_types),
        description=row.description,
        status=row.status,
        created_at=row.created_at,
        status_changed_at=row.status_changed_at,
        status_reason=row.status_reason,
    )


def _row(conn: Connection, endpoint_id: str, *, lock: bool = False) -> Any:
    query = select(_endpoints).where(_endpoints.c.id == endpoint_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise EndpointNotFound(endpoint_id)
    return row


def register(
    engine: Engine, *, url: str, event_types: Sequence[str], description: str, at: datetime
) -> tuple[Endpoint, str]:
    """A new enabled endpoint and its secret (shown to the caller once, here)."""
    at = require_aware_utc(at, "at")
    types = check_event_types(list(event_types))
    endpoint_id = new_endpoint_id(secrets.token_bytes(16))
    secret = new_secret()

    def work(conn: Connection) -> Endpoint:
        conn.execute(
            _endpoints.insert().values(
                id=endpoint_id,
                url=url,
                event_types=types,
                description=description,
                status="enabled",
                created_at=at,
                status_changed_at=at,
            )
        )
        conn.execute(
            _secrets.insert().values(endpoint_id=endpoint_id, secret=secret, created_at=at)
        )
        return _endpoint(_row(conn, endpoint_id))

    return unit_of_work.transact(engine, work), secret


def get(engine: Engine, endpoint_id: str) -> Endpoint:
    return unit_of_work.read(engine, lambda conn: _endpoint(_row(conn, endpoint_id)))


def list_endpoints(engine: Engine, status: EndpointStatus | None = None) -> list[Endpoint]:
    query = select(_endpoints).order_by(_endpoints.c.created_at, _endpoints.c.id)
    if status is not None:
        query = query.where(_endpoints.c.status == status)

    def work(conn: Connection) -> list[Endpoint]:
        return [_endpoint(row) for row in conn.execute(query)]

    return unit_of_work.read(engine, work)


def signing_secrets(conn: Connection, endpoint_id: str, at: datetime) -> list[SigningSecret]:
    """The secrets that sign a delivery at ``at``: the current one first, then those
    still in their overlap."""
    rows = conn.execute(
        select(_secrets)
        .where(
            _secrets.c.endpoint_id == endpoint_id,
            or_(_secrets.c.expires_at.is_(None), _secrets.c.expires_at > at),
        )
        .order_by(_secrets.c.id.desc())
    )
    return [SigningSecret(r.secret, r.created_at, r.expires_at) for r in rows]


def secrets_of(engine: Engine, endpoint_id: str, at: datetime) -> list[SigningSecret]:
    def work(conn: Connection) -> list[SigningSecret]:
        _row(conn, endpoint_id)
        return signing_secrets(conn, endpoint_id, at)

    return unit_of_work.read(engine, work)


def rotate_secret(
    engine: Engine, endpoint_id: str, *, overlap: timedelta, at: datetime
) -> tuple[str, datetime]:
    """A new current secret; the secrets valid now keep signing until ``at + overlap``
    (or their own earlier end). The new secret and when the old one stops."""
    at = require_aware_utc(at, "at")
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise ValueError(f"the overlap must be between 0 and {MAX_OVERLAP.days} days")
    old_until = at + overlap
    secret = new_secret()

    def work(conn: Connection) -> None:
        _row(conn, endpoint_id, lock=True)
        conn.execute(
            update(_secrets)
            .where(
                _secrets.c.endpoint_id == endpoint_id,
                or_(_secrets.c.expires_at.is_(None), _secrets.c.expires_at > old_until),
            )
            .values(expires_at=old_until)
        )
        conn.execute(
            _secrets.insert().values(endpoint_id=endpoint_id, secret=secret, created_at=at)
        )

    unit_of_work.transact(engine, work)
    return secret, old_until


_MOVES: dict[EndpointStatus, tuple[EndpointStatus, ...]] = {
    "enabled": ("disabled", "failing"),  # enable: from disabled, or re-arm a failing one
    "disabled": ("enabled", "failing"),
    "failing": ("enabled",),
}


def set_status(
    engine: Engine, endpoint_id: str, status: EndpointStatus, *, reason: str | None, at: datetime
) -> Endpoint:
    """Move the endpoint to ``status``; the same status again changes nothing."""
    at = require_aware_utc(at, "at")

    def work(conn: Connection) -> Endpoint:
        row = _row(conn, endpoint_id, lock=True)
        if row.status == status:
            return _endpoint(row)
        if row.status not in _MOVES[status]:
            raise EndpointStateError(f"a {row.status} endpoint cannot become {status}")
        conn.execute(
            update(_endpoints)
            .where(_endpoints.c.id == endpoint_id)
            .values(status=status, status_changed_at=at, status_reason=reason)
        )
        if status == "enabled":
            # Everything that waited is due at once, with a fresh three days.
            conn.execute(
                update(_deliveries)
                .where(_deliveries.c.endpoint_id == endpoint_id, _deliveries.c.status == "pending")
                .values(next_attempt_at=at, first_failed_at=None)
            )
        return _endpoint(_row(conn, endpoint_id))

    return unit_of_work.transact(engine, work)
