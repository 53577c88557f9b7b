"""Outbound events: endpoints and their secrets, the outbox, deliveries and attempts.

Revision ID: 0015_outbound
Revises: 0014_audit_log
Create Date: 2026-12-08

Tables described in ``ledger.outbound.tables``. An event and its deliveries are written
in the transaction of the change the event reports; the unique event id keeps a
retried step from writing it twice.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015_outbound"
down_revision: str | Sequence[str] | None = "0014_audit_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "outbound_endpoints",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event_types", JSON, nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("status_changed_at", TS, nullable=False),
        sa.Column("status_reason", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_endpoints")),
        sa.CheckConstraint(
            _in("status", ("enabled", "disabled", "failing")),
            name=op.f("ck_outbound_endpoints_status"),
        ),
    )
    op.create_table(
        "outbound_endpoint_secrets",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("secret", sa.String(100), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_endpoint_secrets")),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["outbound_endpoints.id"],
            name=op.f("fk_outbound_endpoint_secrets_endpoint_id_outbound_endpoints"),
        ),
        sa.UniqueConstraint("secret", name=op.f("uq_outbound_endpoint_secrets_secret")),
    )
    op.create_index(
        "ix_outbound_endpoint_secrets_endpoint", "outbound_endpoint_secrets", ["endpoint_id"]
    )
    op.create_table(
        "outbound_events",
        sa.Column("seq", ID, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("subscription_id", sa.String(100), nullable=True),
        sa.Column("customer_id", sa.String(100), nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbound_events")),
        sa.UniqueConstraint("id", name=op.f("uq_outbound_events_id")),
    )
    op.create_index("ix_outbound_events_occurred_at", "outbound_events", ["occurred_at"])
    op.create_table(
        "outbound_deliveries",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("endpoint_id", sa.String(40), nullable=False),
        sa.Column("event_seq", ID, nullable=False),
        sa.Column("ordering_key", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("first_failed_at", TS, nullable=True),
        sa.Column("delivered_at", TS, nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_deliveries")),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["outbound_endpoints.id"],
            name=op.f("fk_outbound_deliveries_endpoint_id_outbound_endpoints"),
        ),
        sa.ForeignKeyConstraint(
            ["event_seq"],
            ["outbound_events.seq"],
            name=op.f("fk_outbound_deliveries_event_seq_outbound_events"),
        ),
        sa.UniqueConstraint(
            "endpoint_id", "event_seq", name=op.f("uq_outbound_deliveries_endpoint_id_event_seq")
        ),
        sa.CheckConstraint(
            _in("status", ("pending", "delivered")), name=op.f("ck_outbound_deliveries_status")
        ),
    )
    op.create_index(
        "ix_outbound_deliveries_due",
        "outbound_deliveries",
        ["endpoint_id", "status", "next_attempt_at"],
    )
    op.create_table(
        "outbound_attempts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("delivery_id", ID, nullable=False),
        sa.Column("attempted_at", TS, nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbound_attempts")),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["outbound_deliveries.id"],
            name=op.f("fk_outbound_attempts_delivery_id_outbound_deliveries"),
        ),
    )
    op.create_index("ix_outbound_attempts_delivery", "outbound_attempts", ["delivery_id"])


def downgrade() -> None:
    op.drop_table("outbound_attempts")
    op.drop_table("outbound_deliveries")
    op.drop_table("outbound_events")
    op.drop_table("outbound_endpoint_secrets")
    op.drop_table("outbound_endpoints")
