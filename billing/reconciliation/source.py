"""The settlement-source port: where reconciliation reads what the gateway settled.

Two adapters implement it: ``activities.settlement_stripe.StripeSettlementSource`` on
Stripe's balance transactions and payouts, which also reads the development settlement
simulator (``dunwell.settlement_sim``), since the simulator answers the same API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from billing.disputes import DisputeSnapshot
from billing.reconciliation.model import GatewayObject, Payout, SettlementTxn

PAGE_LIMIT = 100  # Stripe's largest page


@dataclass(frozen=True, slots=True)
class TxnPage:
    items: tuple[SettlementTxn, ...]
    has_more: bool
    next_cursor: str | None


class SettlementSource(Protocol):
    async def payout(self, payout_id: str) -> Payout:
        """The payout as the gateway holds it now."""
        ...

    async def payout_transactions(
        self, payout_id: str, *, starting_after: str | None = None, limit: int = PAGE_LIMIT
    ) -> TxnPage:
        """One page of the balance transactions the payout settled, sources expanded."""
        ...

    async def payouts(self, *, arrival_gte: datetime, arrival_lt: datetime) -> list[Payout]:
        """Every payout arriving in ``[arrival_gte, arrival_lt)``."""
        ...

    async def transactions(
        self, *, created_gte: datetime, created_lt: datetime
    ) -> list[SettlementTxn]:
        """Every balance transaction created in ``[created_gte, created_lt)``, paid out
        or not, sources expanded."""
        ...

    async def payment(self, ref: str) -> GatewayObject | None:
        """The payment intent ``ref`` as the gateway holds it; None if it has none."""
        ...

    async def dispute(self, dispute_id: str) -> DisputeSnapshot | None:
        """The dispute with its balance transactions; None if the gateway has none."""
        ...

    async def balance(self) -> dict[str, int]:
        """Pending plus available balance per currency, in minor units."""
        ...
