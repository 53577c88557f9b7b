"""Outbound deliveries: an index for the head of each subscription's queue.

Revision ID: 0016_outbound_ordering
Revises: 0015_outbound
Create Date: 2026-12-08

A delivery round sends, per endpoint, only the pending deliveries no earlier event of
their subscription waits before (``ledger.outbound.delivery``); this index answers that
question without scanning the endpoint's queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016_outbound_ordering"
down_revision: str | Sequence[str] | None = "0015_outbound"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_outbound_deliveries_ordering",
        "outbound_deliveries",
        ["endpoint_id", "ordering_key", "status", "event_seq"],
    )


def downgrade() -> None:
    op.drop_index("ix_outbound_deliveries_ordering", table_name="outbound_deliveries")
