"""Temporal activities: the only code that touches the gateway, the ledger and the tax engine.

Beside the activity classes live the adapters they call: the Stripe gateway
(``stripe_gateway``), Stripe Tax (``stripe_tax``), the live VAT ID check (``vies``)
and the tax engine factory (``tax_engines``).

May import: ``billing``, ``tax``, ``ledger`` and ``stores``. Never ``workflows`` (the
workflows import the activities, not the other way round) and never ``api``.
"""

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
    # Beside billing's own: a charging worker also cancels an abandoned on-session intent.
    found.append(billing.sync.cancel_intent)
    if ledger is not None:
        found.append(ledger.post_entries)
    return found
