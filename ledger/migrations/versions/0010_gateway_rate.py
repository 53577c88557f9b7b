"""The outbound gateway request budget every process shares.

Revision ID: 0010_gateway_rate
Revises: 0009_attribution_exceptions
Create Date: 2026-12-07

One row per second: how many gateway requests the processes have taken in it
(``stores.gateway_rate``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_gateway_rate"
down_revision: str | Sequence[str] | None = "0009_attribution_exceptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_rate_windows",
        sa.Column("window_start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.CheckConstraint("used >= 0", name=op.f("ck_gateway_rate_windows_used")),
        sa.PrimaryKeyConstraint("window_start", name=op.f("pk_gateway_rate_windows")),
    )


def downgrade() -> None:
    op.drop_table("gateway_rate_windows")
