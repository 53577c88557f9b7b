"""Temporal activities: the only code that touches the gateway, the ledger and the tax engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.billing import BillingActivities
from activities.ledger import LedgerActivities


def all_activities(
    billing: BillingActivities, ledger: LedgerActivities | None = None
) -> list[Callable[..., Any]]:
    """Every activity method a Dunwell worker registers."""
    found: list[Callable[..., Any]] = list(billing.all())
    if ledger is not None:
        found.append(ledger.post_entries)
    return found
