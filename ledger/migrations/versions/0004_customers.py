"""Customer and subscription directory.

Revision ID: 0004_customers
Revises: 0003_billing_documents
Create Date: 2026-11-25

``subscriptions`` is a directory (owner, plan and currency at creation, workflow id),
not the subscription's state: the workflow ``subscription-<id>`` holds that.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_customers"
down_revision: str | Sequence[str] | None = "0003_billing_documents"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("state", sa.String(64), nullable=True),
        sa.Column("postal_code", sa.String(32), nullable=False),
        sa.Column("city", sa.String(200), nullable=False),
        sa.Column("line1", sa.String(300), nullable=False),
        sa.Column("line2", sa.String(300), nullable=True),
        sa.Column("tax_id", sa.String(64), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("gateway_customer_id", sa.String(255), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_customers"),
        sa.UniqueConstraint("gateway_customer_id", name="uq_customers_gateway_customer_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_customers_idempotency_key"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("workflow_id", sa.String(255), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_hash", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subscriptions"),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name="fk_subscriptions_customer_id_customers"
        ),
        sa.UniqueConstraint("workflow_id", name="uq_subscriptions_workflow_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_subscriptions_idempotency_key"),
    )
    op.create_index(
        "ix_subscriptions_customer_id_created_at",
        "subscriptions",
        ["customer_id", "created_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscriptions_customer_id_created_at", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_table("customers")
