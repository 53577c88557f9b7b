"""The stores' tables: the customer directory, gateway events and notifications.

Descriptions for queries; the schema is made by the Alembic revisions in
``ledger/migrations`` (``0002_gateway_events``, ``0004_customers``, ``0005_notifications``,
``0006_customer_segment``, ``0007_notification_dismissal``, ``0010_gateway_rate``,
``0014_audit_log``, ``0017_card_attempts``). What each row means, and how its status
moves, is said by the store that owns it: ``stores.customers``, ``stores.gateway_events``,
``stores.notifications``, ``stores.gateway_rate``, ``stores.audit``,
``stores.card_attempts``.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.schema import Base, Id, Json, UTCDateTime

# -- the customer and subscription directory (stores.customers) ---------------------

customers = Table(
    "customers",
    Base.metadata,
    Column("id", String(64), primary_key=True),
    Column("email", String(320), nullable=False),
    Column("name", String(300), nullable=False),
    Column("country", String(2), nullable=False),
    Column("state", String(64)),
    Column("postal_code", String(32), nullable=False),
    Column("city", String(200), nullable=False),
    Column("line1", String(300), nullable=False),
    Column("line2", String(300)),
    Column("tax_id", String(64)),
    Column("timezone", String(64), nullable=False),
    Column("segment", String(40), nullable=False, server_default="default"),
    Column("gateway_customer_id", String(255), unique=True),
    # Set when the request carried an Idempotency-Key; the hash tells a retry from reuse.
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    Base.metadata,
    Column("id", String(64), primary_key=True),
    Column("customer_id", String(64), ForeignKey("customers.id"), nullable=False),
    Column("plan_id", String(100), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("workflow_id", String(255), nullable=False, unique=True),
    Column("idempotency_key", String(255), unique=True),
    Column("request_hash", String(64)),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_subscriptions_customer_id_created_at", "customer_id", "created_at"),
)


# -- gateway events (stores.gateway_events) ------------------------------------------


class ProcessedEvent(Base):
    __tablename__ = "processed_events"
    __table_args__ = (
        CheckConstraint("source IN ('stripe', 'relay')", name="source"),
        CheckConstraint("status IN ('received', 'delivered', 'parked')", name="status"),
        Index("ix_processed_events_status_received_at", "status", "received_at"),
    )

    # Unique across sources: a relay forwarding a Stripe event under its Stripe id
    # dedupes against the direct webhook.
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    source: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(128))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    raw_body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ParkedEvent(Base):
    __tablename__ = "parked_events"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(
        String(255), ForeignKey("processed_events.event_id"), unique=True
    )
    source: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(128))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(32))
    parked_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


processed_events = cast(Table, ProcessedEvent.__table__)
parked_events = cast(Table, ParkedEvent.__table__)


# -- customer notifications (stores.notifications) -----------------------------------


class NotificationRecord(Base):
    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent')", name="status"),
        Index("ix_notifications_customer_id_created_at", "customer_id", "created_at"),
    )

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    invoice_id: Mapped[str | None] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    message_id: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    send_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The customer dismissed it in the portal (0007_notification_dismissal).
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


notifications = cast(Table, NotificationRecord.__table__)


# -- the outbound gateway request budget every process shares (stores.gateway_rate) -----

gateway_rate_windows = Table(
    "gateway_rate_windows",
    Base.metadata,
    Column("window_start", BigInteger, primary_key=True, autoincrement=False),  # Unix second
    Column("used", Integer, nullable=False),
    CheckConstraint("used >= 0", name="used"),
)


# -- the audit log (stores.audit); append-only, enforced by 0014_audit_log's triggers ---

audit_log = Table(
    "audit_log",
    Base.metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False, index=True),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("before", Json),
    Column("after", Json),
    Column("request_id", String(128)),
    Index("ix_audit_log_actor_id", "actor", "id"),
    Index("ix_audit_log_target_id", "target", "id"),
)


# -- the card attempt ledger every charge path writes (stores.card_attempts) -----------

card_facts = Table(
    "card_facts",
    Base.metadata,
    Column("card_key", String(255), primary_key=True),
    Column("brand", String(32), nullable=False),
    Column("blocked_at", UTCDateTime),
    Column("block_reason", String(64)),
    Column("blocked_by_invoice", String(255)),
)

card_attempts = Table(
    "card_attempts",
    Base.metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("attempt_key", String(255), nullable=False, unique=True),
    Column("card_key", String(255), nullable=False),
    Column("payment_method_id", String(255)),
    Column("brand", String(32), nullable=False),
    Column("invoice_id", String(255), nullable=False),
    Column("subscription_id", String(255)),
    Column("path", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("decline_code", String(64)),
    Column("network_decline_code", String(16)),
    Column("network_advice_code", String(16)),
    CheckConstraint("outcome IN ('pending', 'succeeded', 'declined')", name="outcome"),
    Index("ix_card_attempts_card_key_at", "card_key", "at"),
)
