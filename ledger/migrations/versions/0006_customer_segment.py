"""Customer segment, which picks the dunning policy together with the plan.

Revision ID: 0006_customer_segment
Revises: 0005_notifications
Create Date: 2026-11-26

Existing customers are in the ``default`` segment, the one every customer was in before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_customer_segment"
down_revision: str | Sequence[str] | None = "0005_notifications"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(
            sa.Column("segment", sa.String(40), nullable=False, server_default="default")
        )


def downgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("segment")
