"""Economic-nexus alerts, one per jurisdiction, level and threshold.

Revision ID: 0013_nexus_alerts
Revises: 0012_tax_records
Create Date: 2026-12-07

Written by the daily nexus watch (``ledger.nexus_watch``); the unique constraint is
what makes an alert fire once per threshold, however often the watch runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_nexus_alerts"
down_revision: str | Sequence[str] | None = "0012_tax_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tax_nexus_alerts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("jurisdiction", sa.String(32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("threshold_from", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("sales", sa.BigInteger(), nullable=False),
        sa.Column("transactions", sa.Integer(), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("window_end", TS, nullable=False),
        sa.Column("raised_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tax_nexus_alerts")),
        sa.UniqueConstraint(
            "jurisdiction",
            "level",
            "threshold_from",
            name=op.f("uq_tax_nexus_alerts_jurisdiction_level_threshold_from"),
        ),
    )


def downgrade() -> None:
    op.drop_table("tax_nexus_alerts")
