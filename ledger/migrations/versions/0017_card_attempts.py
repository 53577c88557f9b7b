"""The card attempt ledger: every charge on a card, across invoices, and the card's block.

Revision ID: 0017_card_attempts
Revises: 0016_outbound_ordering
Create Date: 2026-12-08

Network caps count attempts per card (Visa 15 in 30 days; Mastercard 10 in 24 h, 35 in
30 days), and a Visa Category 1 code, a Mastercard MAC 03/21 or a hard decline is a fact
about the card, not an invoice. ``card_attempts`` holds one row per charge, keyed by its
idempotency key, written by every charge path (dunning retries, renewals, plan changes,
on-session payments); ``card_facts`` holds one row per card, the row a charge locks while
it checks the caps, and the card's block. Written by ``stores.card_attempts``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_card_attempts"
down_revision: str | Sequence[str] | None = "0016_outbound_ordering"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "card_facts",
        sa.Column("card_key", sa.String(255), nullable=False),
        sa.Column("brand", sa.String(32), nullable=False),
        sa.Column("blocked_at", TS),
        sa.Column("block_reason", sa.String(64)),
        sa.Column("blocked_by_invoice", sa.String(255)),
        sa.PrimaryKeyConstraint("card_key", name=op.f("pk_card_facts")),
    )
    op.create_table(
        "card_attempts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("attempt_key", sa.String(255), nullable=False),
        sa.Column("card_key", sa.String(255), nullable=False),
        sa.Column("payment_method_id", sa.String(255)),
        sa.Column("brand", sa.String(32), nullable=False),
        sa.Column("invoice_id", sa.String(255), nullable=False),
        sa.Column("subscription_id", sa.String(255)),
        sa.Column("path", sa.String(32), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("decline_code", sa.String(64)),
        sa.Column("network_decline_code", sa.String(16)),
        sa.Column("network_advice_code", sa.String(16)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_card_attempts")),
        sa.UniqueConstraint("attempt_key", name=op.f("uq_card_attempts_attempt_key")),
        sa.CheckConstraint(
            "outcome IN ('pending', 'succeeded', 'declined')",
            name=op.f("ck_card_attempts_outcome"),
        ),
    )
    op.create_index("ix_card_attempts_card_key_at", "card_attempts", ["card_key", "at"])


def downgrade() -> None:
    op.drop_table("card_attempts")
    op.drop_table("card_facts")
