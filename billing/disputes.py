"""Disputes (chargebacks) as the gateway reports them, and what Dunwell does about them.

A dispute moves money in balance transactions of its own: the funds the card network
withdraws when it opens (amount negative, with the dispute fee), and the funds it
reinstates when the merchant wins (amount positive). Each is booked once, keyed by its
balance transaction id (``ledger.disputes``); ``charge.dispute.created`` and
``charge.dispute.closed`` move no money, they change the dispute's state.

What happens to the subscription whose payment is disputed is a policy
(``DUNWELL_DISPUTE_POLICY``):

- ``flag`` (the default): the subscription stays active; the dispute counts against
  it in the payment history SCA decisions read (``billing.sca``: an account with a
  dispute is no longer trusted, so on-session payments are challenged), and ops see
  it in ``dunwell disputes``. Most disputes are a customer who did not recognise the
  charge; cutting access before the outcome punishes the honest ones.
- ``cancel_at_period_end``: as ``flag``, and the subscription is cancelled at the end
  of its current period (undoable by ops or the customer like any cancellation), for
  businesses that do not keep serving a customer who charged back.

A dispute the merchant won no longer counts against the subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DisputePolicy(StrEnum):
    FLAG = "flag"
    CANCEL_AT_PERIOD_END = "cancel_at_period_end"


# Stripe's dispute statuses: open ones, and how a closed one ended.
OPEN_STATUSES = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)
WON = "won"
LOST = "lost"
CLOSED_STATUSES = frozenset({WON, LOST, "warning_closed", "prevented"})


@dataclass(frozen=True, slots=True)
class DisputeTxn:
    """One balance transaction of a dispute, in the settlement currency (signed)."""

    id: str
    amount: int
    fee: int
    currency: str
    reporting_category: str  # dispute | dispute_reversal
    created: datetime

    @property
    def net(self) -> int:
        return self.amount - self.fee

    @property
    def kind(self) -> str:
        return "withdrawn" if self.amount < 0 else "reinstated"


@dataclass(frozen=True, slots=True)
class DisputeSnapshot:
    """A dispute as the gateway holds it (amount unsigned, in the charge's currency)."""

    id: str
    charge_id: str
    payment_intent_id: str | None
    amount: int
    currency: str
    reason: str
    status: str
    created: datetime
    balance_transactions: tuple[DisputeTxn, ...]

    @property
    def closed(self) -> bool:
        return self.status in CLOSED_STATUSES

    @property
    def counts_against(self) -> bool:
        """Whether it counts as a dispute in the customer's payment history."""
        return self.status != WON and self.status != "warning_closed"
