"""Disputes end to end: the simulator disputes a real localstripe charge (with its fee)
and sends the signed events; ``dispute-<id>`` reads the dispute back and books what it
moved once; the payout that settles the charge and the dispute's transactions then
reconciles with no exception and clearing nets to zero."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import func, select
from temporalio.common import WorkflowIDConflictPolicy

from activities.disputes import DisputeSynced
from billing.gateway import ChargeSucceeded
from billing.money import Money
from ledger.disputes.store import DisputeStore
from ledger.invoices import DraftLine
from ledger.models import entries_table
from ledger.reconciliation.exceptions import ExceptionStore
from tests.invoices.conftest import issue
from tests.reconciliation.conftest import Recon
from tests.reconciliation.test_recon_workflow import DAY, reconcile
from tests.support.settlement_sim import call
from workflows.disputes import DISPUTE_EVENT_SIGNAL, DisputeEvent, DisputeWorkflow, workflow_id

DISPUTE_FEE = 1_500  # the simulator's default


async def paid_charge(recon: Recon, amount: int = 10_000) -> tuple[str, str, int]:
    """(invoice id, charge id, total) of an invoice paid by a real charge."""
    invoice = issue(recon.invoices, [DraftLine("a", "Plan", amount)])
    if not recon.customer:
        key = f"dispute-{uuid.uuid4().hex[:10]}"
        recon.customer = await recon.gateway.create_customer(idempotency_key=f"{key}:c")
        pm = recon.stripe.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {
                    "number": "4242424242424242",
                    "exp_month": 12,
                    "exp_year": 2031,
                    "cvc": "123",
                },
            }
        )
        recon.pm = pm.id
        await recon.gateway.attach_payment_method(
            payment_method_id=pm.id, customer_id=recon.customer, idempotency_key=f"{key}:a"
        )
    outcome = await recon.gateway.charge_off_session(
        customer_id=recon.customer,
        payment_method_id=recon.pm,
        amount=Money(invoice.total, "EUR"),
        idempotency_key=f"dispute-charge-{uuid.uuid4().hex[:10]}",
        metadata={"dunwell_invoice_id": invoice.id},
    )
    assert isinstance(outcome, ChargeSucceeded) and outcome.charge_id
    recon.invoices.mark_paid(
        invoice.id,
        payment_ref=outcome.payment_intent_id,
        amount=invoice.total,
        at=invoice.created_at,
    )
    return invoice.id, outcome.charge_id, invoice.total


async def sync(recon: Recon, dispute_id: str, event: str) -> DisputeSynced:
    handle = await recon.client.start_workflow(
        DisputeWorkflow.run,
        dispute_id,
        id=workflow_id(dispute_id),
        task_queue=recon.task_queue,
        start_signal=DISPUTE_EVENT_SIGNAL,
        start_signal_args=[DisputeEvent(f"evt_{uuid.uuid4().hex[:12]}", event)],
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    result: DisputeSynced = await handle.result()
    return result


def entries(recon: Recon) -> int:
    with recon.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(entries_table)).scalar_one())


async def test_dispute_opened_withdrawn_reinstated_posts_each_once(recon: Recon) -> None:
    start = {
        code: recon.balance(code)
        for code in ("gateway_clearing:EUR", "chargebacks:EUR", "gateway_fees:EUR")
    }
    invoice_id, charge_id, total = await paid_charge(recon)
    opened: dict[str, Any] = call(
        recon.sim, "POST", "/_sim/disputes", {"charge": charge_id, "reason": "fraudulent"}
    )
    dispute_id = opened["id"]

    first = await sync(recon, dispute_id, "charge.dispute.funds_withdrawn")
    assert (first.booked, first.posted, first.opened) == (True, 1, True)
    assert recon.balance("chargebacks:EUR") == start["chargebacks:EUR"] + total
    assert recon.balance("gateway_fees:EUR") >= start["gateway_fees:EUR"] + DISPUTE_FEE
    withdrawn_fees = recon.balance("gateway_fees:EUR")

    # Replayed webhooks (created, funds_withdrawn again) book nothing more.
    booked = entries(recon)
    again = await sync(recon, dispute_id, "charge.dispute.created")
    assert (again.posted, entries(recon)) == (0, booked)

    call(recon.sim, "POST", f"/_sim/disputes/{dispute_id}/close", {"outcome": "won"})
    won = await sync(recon, dispute_id, "charge.dispute.funds_reinstated")
    assert (won.status, won.posted, won.opened) == ("won", 1, False)
    assert recon.balance("chargebacks:EUR") == start["chargebacks:EUR"]
    assert recon.balance("gateway_fees:EUR") == withdrawn_fees  # the fee is not returned
    closed = await sync(recon, dispute_id, "charge.dispute.closed")
    assert closed.posted == 0

    view = DisputeStore(recon.engine).get(dispute_id)
    assert view is not None
    assert (view.invoice_id, view.status, view.withdrawn, view.fees) == (
        invoice_id, "won", 0, DISPUTE_FEE,
    )  # fmt: skip
    assert view.closed_at is not None
    assert recon.ledger.trial_balance().balanced

    # The payout settles the charge, the withdrawal and the reinstatement: all match.
    (payout_id,) = recon.tick(int(time.time()) + DAY)["payouts"]
    summary = await reconcile(recon, payout_id)
    assert (summary.status, summary.exceptions) == ("reconciled", 0), summary
    assert (summary.lines, summary.matched) == (3, 3)
    assert recon.balance("gateway_clearing:EUR") == start["gateway_clearing:EUR"]


async def test_a_lost_dispute_keeps_its_chargeback(recon: Recon) -> None:
    before = recon.balance("chargebacks:EUR")
    _invoice_id, charge_id, total = await paid_charge(recon, 2_000)
    dispute_id = call(recon.sim, "POST", "/_sim/disputes", {"charge": charge_id})["id"]
    await sync(recon, dispute_id, "charge.dispute.created")
    call(recon.sim, "POST", f"/_sim/disputes/{dispute_id}/close", {"outcome": "lost"})
    lost = await sync(recon, dispute_id, "charge.dispute.closed")
    assert (lost.status, lost.posted, lost.against_subscription) == ("lost", 0, 1)
    assert recon.balance("chargebacks:EUR") == before + total


async def test_a_dispute_of_an_unrecorded_payment_books_nothing(recon: Recon) -> None:
    stray = await recon.charge(3_000, record=False)
    assert stray.charge_id
    dispute_id = call(recon.sim, "POST", "/_sim/disputes", {"charge": stray.charge_id})["id"]
    booked = entries(recon)
    result = await sync(recon, dispute_id, "charge.dispute.created")
    assert result.booked is False and entries(recon) == booked
    assert DisputeStore(recon.engine).get(dispute_id) is None
    (exc,) = [
        x for x in ExceptionStore(recon.engine).list(limit=500) if x.gateway_ref == dispute_id
    ]
    assert exc.cls.value == "missing_in_ledger"


async def test_a_dispute_the_gateway_does_not_know_books_nothing(recon: Recon) -> None:
    booked = entries(recon)
    result = await sync(recon, "dp_NeverOpenedAnywhere", "charge.dispute.created")
    assert result.booked is False and entries(recon) == booked
    (exc,) = [
        x
        for x in ExceptionStore(recon.engine).list(limit=500)
        if x.gateway_ref == "dp_NeverOpenedAnywhere"
    ]
    assert exc.cls.value == "missing_at_gateway"
