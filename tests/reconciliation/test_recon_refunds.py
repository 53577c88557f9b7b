"""A payout that settles a charge and a refund of it, both booked through Dunwell: the
refund's balance transaction matches the ledger's refund, and clearing nets to zero."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from billing.gateway import ChargeSucceeded
from billing.money import Money
from ledger.invoices import DraftLine
from tests.invoices.conftest import issue
from tests.reconciliation.conftest import Recon
from tests.reconciliation.test_recon_workflow import DAY, reconcile
from workflows.refunds import RefundWorkflow, refund_workflow_id


async def test_a_refund_in_a_payout_matches_its_ledger_refund(recon: Recon) -> None:
    clearing = recon.balance("gateway_clearing:EUR")
    invoice = issue(recon.invoices, [DraftLine("a", "Plan", 10_000)])
    await recon.charge(1_000, record=False)  # makes the harness's customer and card
    outcome = await recon.gateway.charge_off_session(
        customer_id=recon.customer,
        payment_method_id=recon.pm,
        amount=Money(invoice.total, "EUR"),
        idempotency_key=f"recon-refund-{uuid.uuid4().hex[:10]}",
        metadata={"dunwell_invoice_id": invoice.id},
    )
    assert isinstance(outcome, ChargeSucceeded)
    recon.invoices.mark_paid(
        invoice.id,
        payment_ref=outcome.payment_intent_id,
        amount=invoice.total,
        at=invoice.created_at,
    )
    key = f"recon-{uuid.uuid4().hex}"
    recon.invoices.request_refund(
        invoice.id, key=key, amount=2_380, reason="duplicate", actor="ops", at=datetime.now(UTC)
    )
    refunded = await recon.client.execute_workflow(
        RefundWorkflow.run, key, id=refund_workflow_id(key), task_queue=recon.task_queue
    )
    assert refunded.status == "recorded"

    (payout_id,) = recon.tick(int(time.time()) + DAY)["payouts"]
    summary = await reconcile(recon, payout_id)
    # The unrecorded warm-up charge is the one exception; the refund matched.
    assert summary.exceptions_by_class == {"missing_in_ledger": 1}
    assert (summary.lines, summary.matched) == (3, 2)
    fee_of_warm_up = 25 + 15  # 1.5 % + 25 of 1,000 (the test card is issued in the EEA)
    assert recon.balance("gateway_clearing:EUR") == clearing - 1_000 + fee_of_warm_up
