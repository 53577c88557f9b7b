"""Notifications the customer dismissed in the portal.

Revision ID: 0007_notification_dismissal
Revises: 0006_customer_segment
Create Date: 2026-12-07

A dismissed notification stays (it is the record of what the customer was told); the
portal no longer lists it. Existing rows are not dismissed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_notification_dismissal"
down_revision: str | Sequence[str] | None = "0006_customer_segment"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("dismissed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("dismissed_at")
