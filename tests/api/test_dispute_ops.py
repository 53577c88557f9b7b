"""Disputes for ops: ``charge.dispute.*`` webhooks start the dispute's run once however
often they arrive, and ``/v1/ops/disputes`` and ``dunwell disputes`` show each dispute
with what it moved."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from billing.disputes import DisputeSnapshot, DisputeTxn
from ledger import chart
from ledger.db import make_engine
from ledger.disputes.store import DisputeStore
from ledger.errors import UnknownAccountError
from ledger.invoices import DraftLine, InvoiceStore
from ledger.posting import Ledger
from tests.api.conftest import OPS_AUTH, build_app, make_settings, running
from tests.api.test_refund_ops import refund_event, signed
from tests.invoices.conftest import issue

AT = datetime(2026, 4, 1, tzinfo=UTC)


def fees_of(ledger: Ledger) -> int:
    try:
        return ledger.balance(chart.gateway_fees("EUR").code).amount
    except UnknownAccountError:  # no fee booked yet in this database
        return 0


def disputed(store: InvoiceStore, dispute_store: DisputeStore, status: str = "needs_response"):  # type: ignore[no-untyped-def]
    invoice = issue(store, [DraftLine("a", "Plan", 1_000)])
    ref = f"pi_{uuid.uuid4().hex[:12]}"
    store.mark_paid(invoice.id, payment_ref=ref, amount=invoice.total, at=AT)
    dispute_id = f"dp_{uuid.uuid4().hex[:12]}"
    snapshot = DisputeSnapshot(
        dispute_id, f"ch_{uuid.uuid4().hex[:8]}", ref, invoice.total, "EUR", "fraudulent",
        status, AT,
        (DisputeTxn(f"txn_{uuid.uuid4().hex[:12]}", -invoice.total, 1_500, "EUR", "dispute", AT),),
    )  # fmt: skip
    dispute_store.record(
        snapshot,
        invoice_id=invoice.id,
        subscription_id=invoice.subscription_id,
        customer_id=invoice.customer_id,
        payment_ref=ref,
        at=AT,
    )
    return invoice, snapshot


async def test_disputes_are_listed_and_shown(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    engine = make_engine(api_db_url)
    store, disputes = InvoiceStore(engine), DisputeStore(engine)
    fees = fees_of(Ledger(engine))
    invoice, snapshot = disputed(store, disputes)
    assert fees_of(Ledger(engine)) == fees + 1_500
    # Recording the same dispute again moves nothing.
    disputes.record(
        snapshot, invoice_id=invoice.id, subscription_id=invoice.subscription_id,
        customer_id=invoice.customer_id, payment_ref=snapshot.payment_intent_id or "", at=AT,
    )  # fmt: skip
    assert fees_of(Ledger(engine)) == fees + 1_500
    listed = await offline_api.get("/v1/ops/disputes", params={"open": "true"}, headers=OPS_AUTH)
    assert listed.status_code == 200
    mine = [d for d in listed.json() if d["dispute_id"] == snapshot.id]
    assert len(mine) == 1
    assert (mine[0]["invoice_id"], mine[0]["withdrawn"], mine[0]["fees"]) == (
        invoice.id,
        invoice.total,
        1_500,
    )
    shown = await offline_api.get(f"/v1/ops/disputes/{snapshot.id}", headers=OPS_AUTH)
    assert shown.json()["status"] == "needs_response"
    missing = await offline_api.get("/v1/ops/disputes/dp_none", headers=OPS_AUTH)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "dispute_not_found")
    bad = await offline_api.get("/v1/ops/disputes", params={"status": "Won!"}, headers=OPS_AUTH)
    assert bad.status_code == 422
    assert (await offline_api.get("/v1/ops/disputes")).status_code == 401


def test_cli_lists_disputes(api_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dunwell.cli import app
    from dunwell.settings import get_settings

    engine = make_engine(api_db_url)
    _invoice, snapshot = disputed(InvoiceStore(engine), DisputeStore(engine), status="lost")
    monkeypatch.setenv("DUNWELL_DATABASE_URL", api_db_url)
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(app, ["disputes", "--status", "lost"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    assert any(snapshot.id in line and "lost" in line for line in listed.output.splitlines())


@pytest.fixture
async def intake_api(
    api_db_url: str, localstripe_url: str, temporal_dev_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """No worker on this task queue: the run is started and waits, and is ended here."""
    settings = make_settings(api_db_url, localstripe_url, task_queue=f"disp-{uuid.uuid4().hex[:8]}")
    async with running(build_app(settings, temporal_dev_env.client)) as http:
        yield http


async def test_duplicate_dispute_webhooks_start_one_run(
    intake_api: httpx.AsyncClient, temporal_dev_env: WorkflowEnvironment
) -> None:
    dispute_id = f"dp_{uuid.uuid4().hex[:12]}"
    event = refund_event("charge.dispute.created", {"id": dispute_id, "object": "dispute"})
    answers = []
    for _ in range(3):
        payload, headers = signed(event)
        response = await intake_api.post("/webhooks/stripe", content=payload, headers=headers)
        answers.append(response.json()["status"])
    assert answers == ["accepted", "duplicate", "duplicate"]
    handle = temporal_dev_env.client.get_workflow_handle(f"dispute-{dispute_id}")
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    history = await handle.fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 1
    await handle.terminate("test over")
    # A dispute id that is not one never names a dispute run (nor a gateway URL).
    odd = refund_event("charge.dispute.created", {"id": "dp_../../x", "object": "dispute"})
    payload, headers = signed(odd)
    response = await intake_api.post("/webhooks/stripe", content=payload, headers=headers)
    assert response.status_code in (200, 400)
    with pytest.raises(RPCError):
        await temporal_dev_env.client.get_workflow_handle("dispute-dp_../../x").describe()
