"""Dispute activities: read a dispute back from the gateway and book what it moved.

``disputes.sync`` trusts the gateway's record, not the event: it reads the dispute by
id (with its balance transactions) from the settlement source, finds the invoice its
payment paid, records the dispute's state and books each of its balance transactions
once (``ledger.disputes``). A dispute of a payment the ledger never recorded books
nothing and opens a ``missing_in_ledger`` exception; one the gateway does not know
books nothing and opens ``missing_at_gateway``. It returns what the subscription's
workflow needs to know (its risk, and the policy to apply).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from temporalio import activity

from activities.gateway_errors import to_application_error
from billing.disputes import DisputePolicy, DisputeSnapshot
from billing.gateway import GatewayError
from billing.reconciliation.model import ExceptionClass, Finding
from ledger.disputes.store import DisputeStore
from ledger.invoices import InvoiceStore
from ledger.reconciliation.exceptions import ExceptionStore

ACTOR = "disputes"


class DisputeSource(Protocol):
    async def dispute(self, dispute_id: str) -> DisputeSnapshot | None: ...


@dataclass(frozen=True)
class DisputeSynced:
    dispute_id: str
    booked: bool  # False: nothing recorded (an exception was opened)
    status: str | None = None
    subscription_id: str | None = None
    posted: int = 0  # balance transactions booked by this call
    against_subscription: int = 0  # disputes that count against the subscription
    opened: bool = False  # still open at the gateway
    policy: str = DisputePolicy.FLAG


class DisputeActivities:
    def __init__(
        self,
        source: DisputeSource,
        invoices: InvoiceStore,
        disputes: DisputeStore,
        exceptions: ExceptionStore,
        policy: DisputePolicy = DisputePolicy.FLAG,
    ) -> None:
        self._source = source
        self._invoices = invoices
        self._disputes = disputes
        self._exceptions = exceptions
        self._policy = policy

    @activity.defn(name="disputes.sync")
    async def sync(self, dispute_id: str) -> DisputeSynced:
        try:
            dispute = await self._source.dispute(dispute_id)
        except GatewayError as exc:
            raise to_application_error(exc) from exc
        if dispute is None:
            await self._open(
                ExceptionClass.MISSING_AT_GATEWAY,
                dispute_id,
                None,
                "the gateway has no such dispute",
            )
            return DisputeSynced(dispute_id, False)
        payment_ref = dispute.payment_intent_id or dispute.charge_id
        invoice_id = await asyncio.to_thread(self._invoices.invoice_paid_by, payment_ref)
        if invoice_id is None:
            await self._open(
                ExceptionClass.MISSING_IN_LEDGER,
                dispute_id,
                dispute,
                f"the disputed payment {payment_ref} pays no invoice the ledger recorded",
            )
            return DisputeSynced(dispute_id, False, dispute.status)
        invoice = await asyncio.to_thread(self._invoices.get, invoice_id)
        recorded = await asyncio.to_thread(
            self._disputes.record,
            dispute,
            invoice_id=invoice_id,
            subscription_id=invoice.subscription_id,
            customer_id=invoice.customer_id,
            payment_ref=payment_ref,
            at=datetime.now(UTC),
        )
        return DisputeSynced(
            dispute_id,
            True,
            dispute.status,
            invoice.subscription_id,
            recorded.posted,
            recorded.against_subscription,
            not dispute.closed,
            self._policy,
        )

    async def _open(
        self,
        cls: ExceptionClass,
        dispute_id: str,
        dispute: DisputeSnapshot | None,
        problem: str,
    ) -> None:
        activity.logger.warning("dispute %s not booked: %s", dispute_id, problem)
        finding = Finding(
            cls=cls,
            key=f"dispute:{dispute_id}",
            currency=None if dispute is None else dispute.currency,
            amount=None if dispute is None else dispute.amount,
            gateway_ref=dispute_id,
            evidence={
                "check": "disputes",
                "problem": problem,
                "gateway": None
                if dispute is None
                else {
                    "status": dispute.status,
                    "charge": dispute.charge_id,
                    "payment_intent": dispute.payment_intent_id,
                    "reason": dispute.reason,
                },
            },
        )
        await asyncio.to_thread(self._exceptions.open, [finding], actor=ACTOR, at=datetime.now(UTC))
