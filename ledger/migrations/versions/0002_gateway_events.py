"""Gateway events: processed (dedupe + audit + delivery state) and parked (for ops).

Revision ID: 0002_gateway_events
Revises: 0001_ledger
Create Date: 2026-11-25

``processed_events.event_id`` is the dedupe key for both intakes (Stripe webhooks and
the relay). Row states and the delivery claim are described in ``stores.gateway_events``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_gateway_events"
down_revision: str | Sequence[str] | None = "0001_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("raw_body", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_processed_events"),
        sa.CheckConstraint(
            "source IN ('stripe', 'relay')", name=op.f("ck_processed_events_source")
        ),
        sa.CheckConstraint(
            "status IN ('received', 'delivered', 'parked')",
            name=op.f("ck_processed_events_status"),
        ),
    )
    op.create_index(
        "ix_processed_events_status_received_at", "processed_events", ["status", "received_at"]
    )
    op.create_table(
        "parked_events",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("event_type", sa.String(128), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=True),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("subscription_id", sa.String(255), nullable=True),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_parked_events"),
        sa.UniqueConstraint("event_id", name="uq_parked_events_event_id"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["processed_events.event_id"],
            name="fk_parked_events_event_id_processed_events",
        ),
    )
    op.create_index("ix_parked_events_parked_at", "parked_events", ["parked_at"])


def downgrade() -> None:
    op.drop_table("parked_events")
    op.drop_table("processed_events")
