"""Reconciliation exceptions of class ``attribution``.

Revision ID: 0009_attribution_exceptions
Revises: 0008_reconciliation
Create Date: 2026-12-07

A payment the gateway holds for another customer, or for another invoice, than the
event that announced it says (``gateway_reconciler.verify`` found it before anything
was recorded). The class check of ``reconciliation_exceptions`` admits it.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_attribution_exceptions"
down_revision: str | Sequence[str] | None = "0008_reconciliation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = (
    "missing_in_ledger",
    "missing_at_gateway",
    "amount",
    "currency",
    "fee",
    "status",
    "unsettled_aged",
    "duplicate",
    "payout_total",
    "payout_failed",
    "unknown_type",
    "unattributed_fee",
    "clearing_drift",
)
_AFTER = (*_BEFORE, "attribution")
_NAME = "ck_reconciliation_exceptions_class"


def _in(values: tuple[str, ...]) -> str:
    return f'"class" IN ({", ".join(repr(v) for v in values)})'


def _replace_check(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("reconciliation_exceptions") as batch:
        batch.drop_constraint(op.f(_NAME), type_="check")
        batch.create_check_constraint(op.f(_NAME), _in(values))


def upgrade() -> None:
    _replace_check(_AFTER)


def downgrade() -> None:
    op.execute(
        "DELETE FROM reconciliation_exception_actions WHERE exception_id IN "
        "(SELECT id FROM reconciliation_exceptions WHERE \"class\" = 'attribution')"
    )
    op.execute("DELETE FROM reconciliation_exceptions WHERE \"class\" = 'attribution'")
    _replace_check(_BEFORE)
