"""Outbound tables: endpoints and their secrets, the outbox of events, deliveries and
their attempts. The schema is made by revision ``0015_outbound``.

- ``outbound_endpoints``: where the SaaS product receives events, the types it wants,
  and its state (``enabled``, ``disabled`` by ops, ``failing`` after deliveries were
  given up);
- ``outbound_endpoint_secrets``: signing secrets; a rotated-out secret keeps signing
  until its ``expires_at`` (the overlap), the current one has none;
- ``outbound_events``: the outbox, one row per event id, written in the transaction
  of the change it reports; ``seq`` orders events, ``subscription_id`` is the ordering
  key;
- ``outbound_deliveries``: one row per endpoint and event, made with the event for
  every endpoint that wants its type; ``pending`` until a 2xx answer;
- ``outbound_attempts``: append-only, each POST with its answer (status, a bounded
  prefix of the body) or its error.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from ledger.schema import Base, Id, Json, UTCDateTime

metadata = Base.metadata

ENDPOINT_STATUSES = ("enabled", "disabled", "failing")
DELIVERY_STATUSES = ("pending", "delivered")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


outbound_endpoints = Table(
    "outbound_endpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("url", String(2000), nullable=False),
    Column("event_types", Json, nullable=False),
    Column("description", String(500), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("status_changed_at", UTCDateTime, nullable=False),
    Column("status_reason", String(500)),
    CheckConstraint(_in("status", ENDPOINT_STATUSES), name="status"),
)

outbound_endpoint_secrets = Table(
    "outbound_endpoint_secrets",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(40), ForeignKey("outbound_endpoints.id"), nullable=False),
    Column("secret", String(100), nullable=False, unique=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime),
    Index("ix_outbound_endpoint_secrets_endpoint", "endpoint_id"),
)

outbound_events = Table(
    "outbound_events",
    metadata,
    Column("seq", Id, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("subscription_id", String(100)),
    Column("customer_id", String(100)),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Column("data", Json, nullable=False),
    Index("ix_outbound_events_occurred_at", "occurred_at"),
)

outbound_deliveries = Table(
    "outbound_deliveries",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("endpoint_id", String(40), ForeignKey("outbound_endpoints.id"), nullable=False),
    Column("event_seq", Id, ForeignKey("outbound_events.seq"), nullable=False),
    # The subscription, or the event's own id when it belongs to none.
    Column("ordering_key", String(100), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("first_failed_at", UTCDateTime),
    Column("delivered_at", UTCDateTime),
    Column("last_status_code", Integer),
    UniqueConstraint("endpoint_id", "event_seq"),
    CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
    Index("ix_outbound_deliveries_due", "endpoint_id", "status", "next_attempt_at"),
    # revision 0016_outbound_ordering: the head of each subscription's queue
    Index("ix_outbound_deliveries_ordering", "endpoint_id", "ordering_key", "status", "event_seq"),
)

outbound_attempts = Table(
    "outbound_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("outbound_deliveries.id"), nullable=False),
    Column("attempted_at", UTCDateTime, nullable=False),
    Column("status_code", Integer),
    Column("error", String(500)),
    Column("response_body", Text, nullable=False),
    Column("duration_ms", Integer, nullable=False),
    Index("ix_outbound_attempts_delivery", "delivery_id"),
)
