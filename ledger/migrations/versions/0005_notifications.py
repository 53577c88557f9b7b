"""Customer notifications (dunning emails and portal messages).

Revision ID: 0005_notifications
Revises: 0004_customers
Create Date: 2026-11-25

One row per idempotency key; the row is written before the email is sent. States are
described in ``stores.notifications``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_notifications"
down_revision: str | Sequence[str] | None = "0004_customers"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("subscription_id", sa.String(255), nullable=True),
        sa.Column("invoice_id", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("message_id", sa.String(300), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("send_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_notifications"),
        sa.CheckConstraint("status IN ('pending', 'sent')", name=op.f("ck_notifications_status")),
    )
    op.create_index(
        "ix_notifications_customer_id_created_at", "notifications", ["customer_id", "created_at"]
    )
    op.create_index("ix_notifications_invoice_id", "notifications", ["invoice_id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_invoice_id", table_name="notifications")
    op.drop_index("ix_notifications_customer_id_created_at", table_name="notifications")
    op.drop_table("notifications")
