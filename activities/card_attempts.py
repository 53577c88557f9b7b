"""Charges made outside dunning (renewals, plan changes, on-session payments) recorded
in the card attempt ledger (``stores.card_attempts``), so the network caps a dunning
retry checks count every attempt on the card.

The card is known here by its payment method only (these paths never read its
fingerprint: that would cost a gateway read per renewal); a dunning reservation counts
the attempts under the card's fingerprint and under its payment method. The instant is
the activity attempt's scheduled time, the server's clock (skipped time in workflow
tests), not the worker's.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from temporalio import activity

from billing.declines import DeclineInfo
from billing.gateway import ChargeDeclined, ChargeOutcome, ChargeRequiresAction, ChargeSucceeded
from stores.card_attempts import CardAttemptLedger, CardCharge


async def record_charge(
    cards: CardAttemptLedger | None,
    outcome: ChargeOutcome,
    *,
    attempt_key: str,
    customer_id: str,
    payment_method_id: str,
    invoice_id: str,
    subscription_id: str,
    path: str,
) -> None:
    if cards is None:
        return
    result: Literal["succeeded", "declined", "pending"]
    decline: DeclineInfo | None = None
    if isinstance(outcome, ChargeSucceeded):
        result = "succeeded"
    elif isinstance(outcome, ChargeDeclined):
        result, decline = "declined", outcome.decline
    elif isinstance(outcome, ChargeRequiresAction):
        result, decline = "declined", DeclineInfo(code="authentication_required")
    else:  # still processing: an attempt all the same
        result = "pending"
    charge = CardCharge(
        attempt_key=attempt_key,
        customer_id=customer_id,
        payment_method_id=payment_method_id,
        brand="default",
        invoice_id=invoice_id,
        subscription_id=subscription_id,
        path=path,
        at=activity.info().current_attempt_scheduled_time,
    )
    await asyncio.to_thread(cards.record, charge, result, decline)
