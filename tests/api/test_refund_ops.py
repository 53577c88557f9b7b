"""Refunds end to end: the ops API and the gateway's refund webhooks, on a Temporal dev
server with the real workflows and activities, localstripe and PostgreSQL.

Every refund is a real refund at localstripe and one credit note, tax reversed at the
invoice's frozen rates; replayed webhooks and the ops path meeting the webhook path
book each gateway refund once; every refusal changes nothing, at the gateway or here.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import Engine, func, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.stripe_gateway import StripeGateway
from billing.gateway import ChargeSucceeded
from billing.money import Money
from dunwell.converter import data_converter
from dunwell.settings import PLACEHOLDER_WEBHOOK_SECRET
from dunwell.settlement_sim import sign
from ledger import chart
from ledger.db import make_engine
from ledger.invoices import DraftLine, InvoiceStore
from ledger.invoices.refund_tables import invoice_refunds
from ledger.invoices.tables import invoice_notes
from ledger.models import entries_table
from ledger.posting import Ledger
from ledger.reconciliation.exceptions import ExceptionStore
from tests.api.conftest import OPS_AUTH, STRIPE_KEY, VISA_OK
from tests.invoices.conftest import issue
from tests.support.audit import audit_rows
from workflows import WORKFLOWS
from workflows.refunds import charge_workflow_id, refund_workflow_id

# Regenerate with DUNWELL_RECORD_HISTORIES=1 after an intentional incompatible change.
HISTORIES = Path(__file__).parent / "histories"
RECORDED = ("refund_ops", "charge_refunds")


async def record(temporal: WorkflowEnvironment, name: str, workflow_id: str) -> None:
    if os.environ.get("DUNWELL_RECORD_HISTORIES"):
        history = await temporal.client.get_workflow_handle(workflow_id).fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_refund_histories_replay(name: str) -> None:
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    replayer = Replayer(workflows=list(WORKFLOWS), data_converter=data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


@dataclass
class Paid:
    invoice_id: str
    customer_id: str
    total: int
    payment_intent: str
    charge: str


@pytest.fixture
def engine(api_db_url: str) -> Engine:
    return make_engine(api_db_url)


@pytest.fixture
def store(engine: Engine) -> InvoiceStore:
    return InvoiceStore(engine)


@pytest.fixture
async def gateway(localstripe_url: str) -> AsyncIterator[StripeGateway]:
    gw = StripeGateway(STRIPE_KEY, localstripe_url, timeout_seconds=10)
    yield gw
    gw.close()


def sdk(localstripe_url: str) -> stripe.StripeClient:
    return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": localstripe_url})


async def paid_invoice(
    store: InvoiceStore, gateway: StripeGateway, localstripe_url: str, amount: int = 10_000
) -> Paid:
    """An invoice (Germany, 19 %) paid in full by a real charge at localstripe."""
    invoice = issue(store, [DraftLine("a", "Plan", amount)])
    key = f"refund-test-{uuid.uuid4().hex[:10]}"
    customer = await gateway.create_customer(idempotency_key=f"{key}:c")
    pm = sdk(localstripe_url).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": VISA_OK, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    await gateway.attach_payment_method(
        payment_method_id=pm.id, customer_id=customer, idempotency_key=f"{key}:a"
    )
    outcome = await gateway.charge_off_session(
        customer_id=customer,
        payment_method_id=pm.id,
        amount=Money(invoice.total, "EUR"),
        idempotency_key=key,
        metadata={"dunwell_invoice_id": invoice.id},
    )
    assert isinstance(outcome, ChargeSucceeded) and outcome.charge_id
    store.mark_paid(
        invoice.id,
        payment_ref=outcome.payment_intent_id,
        amount=invoice.total,
        at=invoice.created_at,
    )
    return Paid(
        invoice.id, invoice.customer_id, invoice.total, outcome.payment_intent_id, outcome.charge_id
    )


def gateway_refunds(localstripe_url: str, charge: str) -> list[int]:
    listing = sdk(localstripe_url).v1.refunds.list(params={"charge": charge, "limit": 100})
    return sorted(int(r.amount) for r in listing.data)


def counts(engine: Engine) -> tuple[int, int, int]:
    with engine.connect() as conn:
        return (
            int(conn.execute(select(func.count()).select_from(invoice_refunds)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(invoice_notes)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(entries_table)).scalar_one()),
        )


def body(**fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "reason": "requested_by_customer",
        "actor": "ana@ops",
        "idempotency_key": f"key-{uuid.uuid4().hex}",
    }
    out.update(fields)
    return out


async def test_ops_refund_partly_then_the_rest(
    live_api: httpx.AsyncClient,
    store: InvoiceStore,
    engine: Engine,
    gateway: StripeGateway,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
) -> None:
    paid = await paid_invoice(store, gateway, localstripe_url)
    assert paid.total == 11_900
    url = f"/v1/ops/invoices/{paid.invoice_id}/refunds"
    first_body = body(amount=5_950)
    first = await live_api.post(url, json=first_body, headers=OPS_AUTH)
    assert first.status_code == 201, first.text
    got = first.json()
    assert (got["status"], got["amount"], got["source"]) == ("recorded", 5_950, "ops")
    note = store.get_note(got["credit_note_id"])
    assert (note.subtotal, note.tax_total, note.total) == (5_000, 950, 5_950)
    assert note.lines[0].components[0].rate_ppm == 190_000
    assert gateway_refunds(localstripe_url, paid.charge) == [5_950]
    await record(temporal_dev_env, "refund_ops", refund_workflow_id(first_body["idempotency_key"]))

    # The same request again: the same refund, nothing new at the gateway or here.
    before = counts(engine)
    again = await live_api.post(url, json=first_body, headers=OPS_AUTH)
    assert again.status_code == 201 and again.json()["refund_id"] == got["refund_id"]
    assert counts(engine) == before
    assert gateway_refunds(localstripe_url, paid.charge) == [5_950]

    rest = await live_api.post(url, json=body(reason="service_issue"), headers=OPS_AUTH)
    assert rest.status_code == 201, rest.text
    assert rest.json()["amount"] == 5_950
    assert gateway_refunds(localstripe_url, paid.charge) == [5_950, 5_950]
    assert store.refundable(paid.invoice_id).refundable == 0
    ledger = Ledger(engine)
    assert ledger.balance(chart.customer_credit(paid.customer_id, "EUR").code).amount == 0
    assert ledger.trial_balance().balanced
    listed = await live_api.get(
        "/v1/ops/refunds", params={"invoice_id": paid.invoice_id}, headers=OPS_AUTH
    )
    assert [r["amount"] for r in listed.json()] == [5_950, 5_950]
    # Three accepted requests (the repeat included), each with its outcome.
    rows = audit_rows(
        engine.url.render_as_string(hide_password=False), target=f"invoice:{paid.invoice_id}"
    )
    assert [(r.actor, r.action, r.outcome) for r in rows] == [("ops", "invoice.refund", "done")] * 3
    assert rows[0].after["request"] == {**first_body, "note": None}
    assert rows[0].after["refund"]["refund_id"] == got["refund_id"]


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("unknown_invoice", 404, "invoice_not_found"),
        ("unpaid_invoice", 409, "invoice_not_paid"),
        ("above_refundable", 422, "amount_exceeds_refundable"),
        ("bad_reason", 422, "invalid_reason"),
        ("zero_amount", 422, "invalid_amount"),
        ("key_reused", 409, "idempotency_conflict"),
        ("no_actor", 422, "invalid_request"),
    ],
)
async def test_refusals_change_nothing(
    live_api: httpx.AsyncClient,
    store: InvoiceStore,
    engine: Engine,
    gateway: StripeGateway,
    localstripe_url: str,
    case: str,
    status: int,
    code: str,
) -> None:
    paid = await paid_invoice(store, gateway, localstripe_url, amount=1_000)
    invoice_id = paid.invoice_id
    request = body(amount=500)
    if case == "unknown_invoice":
        invoice_id = "inv_NoSuchInvoiceAnywhere"
    elif case == "unpaid_invoice":
        invoice_id = issue(store, [DraftLine("a", "Plan", 1_000)]).id
    elif case == "above_refundable":
        request["amount"] = paid.total + 1
    elif case == "bad_reason":
        request["reason"] = "because"
    elif case == "zero_amount":
        request["amount"] = 0
    elif case == "no_actor":
        del request["actor"]
    else:
        done = await live_api.post(
            f"/v1/ops/invoices/{invoice_id}/refunds",
            json=dict(request, amount=100),
            headers=OPS_AUTH,
        )
        assert done.status_code == 201
    before = counts(engine), gateway_refunds(localstripe_url, paid.charge)
    refused = await live_api.post(
        f"/v1/ops/invoices/{invoice_id}/refunds", json=request, headers=OPS_AUTH
    )
    assert refused.status_code == status, refused.text
    assert refused.json()["error"]["code"] == code
    assert (counts(engine), gateway_refunds(localstripe_url, paid.charge)) == before
    if status != 422 or code == "amount_exceeds_refundable":
        # Refused by the store: recorded as the request's outcome (bad input is not).
        (last,) = audit_rows(
            engine.url.render_as_string(hide_password=False), target=f"invoice:{invoice_id}"
        )[-1:]
        assert (last.action, last.outcome, last.after) == (
            "invoice.refund",
            code,
            {"request": {**request, "amount": request.get("amount"), "note": None}},
        )
    unauthorized = await live_api.post(f"/v1/ops/invoices/{invoice_id}/refunds", json=request)
    assert unauthorized.status_code == 401


def signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event).encode()
    return payload, {
        "Stripe-Signature": sign(payload, PLACEHOLDER_WEBHOOK_SECRET, int(time.time())),
        "Content-Type": "application/json",
    }


def refund_event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": event_type,
        "created": int(time.time()),
        "data": {"object": obj},
    }


async def settled(temporal: WorkflowEnvironment, charge: str) -> None:
    """Wait until the charge's refund run (the latest one) has completed."""
    handle = temporal.client.get_workflow_handle(charge_workflow_id(charge))
    for _ in range(300):
        try:
            described = await handle.describe()
            if described.status is WorkflowExecutionStatus.COMPLETED:
                return
        except Exception:  # not started yet
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"the refund run of {charge} never completed")


async def test_dashboard_refund_is_mirrored_once(
    live_api: httpx.AsyncClient,
    store: InvoiceStore,
    engine: Engine,
    gateway: StripeGateway,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
) -> None:
    paid = await paid_invoice(store, gateway, localstripe_url)
    made = sdk(localstripe_url).v1.refunds.create(params={"charge": paid.charge, "amount": 2_380})
    charge_event = refund_event(
        "charge.refunded", {"id": paid.charge, "object": "charge", "amount_refunded": 2_380}
    )
    created_event = refund_event(
        "refund.created",
        {"id": made.id, "object": "refund", "charge": paid.charge, "amount": 2_380},
    )
    answers = []
    for event in (charge_event, charge_event, created_event):
        payload, headers = signed(event)
        response = await live_api.post("/webhooks/stripe", content=payload, headers=headers)
        assert response.status_code == 200, response.text
        answers.append(response.json()["status"])
        await settled(temporal_dev_env, paid.charge)
    assert answers == ["accepted", "duplicate", "accepted"]
    await record(temporal_dev_env, "charge_refunds", charge_workflow_id(paid.charge))
    (mirrored,) = store.list_refunds(invoice_id=paid.invoice_id)
    assert (mirrored.refund_id, mirrored.source, mirrored.amount) == (made.id, "gateway", 2_380)
    note = store.get_note(str(mirrored.credit_note_id))
    # 2,380 is a fifth of 11,900: 2,000 net and 380 tax at the frozen 19 %.
    assert (note.subtotal, note.tax_total) == (2_000, 380)
    assert Ledger(engine).trial_balance().balanced

    # An ops refund is reported by its own webhook too: still booked once.
    ops = await live_api.post(
        f"/v1/ops/invoices/{paid.invoice_id}/refunds", json=body(amount=1_190), headers=OPS_AUTH
    )
    assert ops.status_code == 201
    before = counts(engine)
    payload, headers = signed(
        refund_event(
            "refund.created",
            {"id": ops.json()["refund_id"], "object": "refund", "charge": paid.charge},
        )
    )
    assert (await live_api.post("/webhooks/stripe", content=payload, headers=headers)).json()[
        "status"
    ] == "accepted"
    await settled(temporal_dev_env, paid.charge)
    assert counts(engine) == before
    assert [r.amount for r in store.list_refunds(invoice_id=paid.invoice_id)] == [2_380, 1_190]


async def test_a_refund_event_the_gateway_does_not_back_books_nothing(
    live_api: httpx.AsyncClient,
    store: InvoiceStore,
    engine: Engine,
    gateway: StripeGateway,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
) -> None:
    paid = await paid_invoice(store, gateway, localstripe_url)
    before = counts(engine)
    # Says the charge was refunded in full; the gateway holds no refund of it.
    payload, headers = signed(
        refund_event(
            "charge.refunded",
            {"id": paid.charge, "object": "charge", "amount_refunded": paid.total},
        )
    )
    assert (await live_api.post("/webhooks/stripe", content=payload, headers=headers)).json()[
        "status"
    ] == "accepted"
    await settled(temporal_dev_env, paid.charge)
    assert counts(engine) == before
    assert store.refundable(paid.invoice_id).refundable == paid.total


async def test_a_dashboard_refund_of_an_unrecorded_payment_opens_an_exception(
    live_api: httpx.AsyncClient,
    store: InvoiceStore,
    engine: Engine,
    gateway: StripeGateway,
    localstripe_url: str,
    temporal_dev_env: WorkflowEnvironment,
) -> None:
    paid = await paid_invoice(store, gateway, localstripe_url)
    other = await paid_invoice(store, gateway, localstripe_url, amount=500)
    # A charge the ledger never recorded: refunded in the dashboard.
    stray = await gateway.charge_off_session(
        customer_id=str(sdk(localstripe_url).v1.charges.retrieve(other.charge).customer),
        payment_method_id=str(
            sdk(localstripe_url).v1.charges.retrieve(other.charge).payment_method
        ),
        amount=Money(700, "EUR"),
        idempotency_key=f"stray-{uuid.uuid4().hex[:10]}",
    )
    assert isinstance(stray, ChargeSucceeded) and stray.charge_id
    made = sdk(localstripe_url).v1.refunds.create(params={"charge": stray.charge_id})
    before = counts(engine)
    payload, headers = signed(
        refund_event("charge.refunded", {"id": stray.charge_id, "object": "charge"})
    )
    await live_api.post("/webhooks/stripe", content=payload, headers=headers)
    await settled(temporal_dev_env, stray.charge_id)
    assert counts(engine) == before
    found = [x for x in ExceptionStore(engine).list(limit=500) if x.gateway_ref == made.id]
    assert [x.cls.value for x in found] == ["missing_in_ledger"]
    assert paid.invoice_id  # the recorded payment beside it is untouched
    assert store.refundable(paid.invoice_id).refundable == paid.total


def test_cli_refuses_a_bad_reason_or_amount_before_anything() -> None:
    from typer.testing import CliRunner

    from dunwell.cli import app

    runner = CliRunner()
    bad_reason = runner.invoke(app, ["refund", "inv_x", "--reason", "because"])
    assert bad_reason.exit_code == 2 and "reason must be one of" in bad_reason.output
    bad_amount = runner.invoke(app, ["refund", "inv_x", "--reason", "duplicate", "--amount", "0"])
    assert bad_amount.exit_code == 2 and "positive" in bad_amount.output


def test_cli_lists_refunds(
    api_db_url: str, store: InvoiceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from dunwell.cli import app
    from dunwell.settings import get_settings

    invoice = issue(store, [DraftLine("a", "Plan", 1_000)])
    store.mark_paid(
        invoice.id, payment_ref="pi_cli_listing", amount=invoice.total, at=invoice.created_at
    )
    store.record_refund(
        refund_id=f"re_cli{uuid.uuid4().hex[:8]}",
        invoice_id=invoice.id,
        amount=300,
        currency="EUR",
        payment_ref="pi_cli_listing",
        at=invoice.created_at,
    )
    monkeypatch.setenv("DUNWELL_DATABASE_URL", api_db_url)
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(app, ["refunds", "--invoice", invoice.id])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    (line,) = listed.output.strip().splitlines()
    assert invoice.id in line and "300 EUR" in line and "recorded" in line


async def test_a_refund_the_gateway_refuses_fails_and_frees_its_amount(
    live_api: httpx.AsyncClient,
    store: InvoiceStore,
    engine: Engine,
    gateway: StripeGateway,
    localstripe_url: str,
) -> None:
    from billing.gateway import ChargeDeclined

    # The ledger believes a payment the gateway holds as failed (a wrong record): the
    # gateway refuses to refund it, and nothing is booked.
    invoice = issue(store, [DraftLine("a", "Plan", 1_000)])
    customer = await gateway.create_customer(idempotency_key=f"refuse-{uuid.uuid4().hex[:8]}")
    pm = sdk(localstripe_url).v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": "4000000000000341", "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    await gateway.attach_payment_method(
        payment_method_id=pm.id, customer_id=customer, idempotency_key=f"{pm.id}:a"
    )
    declined = await gateway.charge_off_session(
        customer_id=customer,
        payment_method_id=pm.id,
        amount=Money(invoice.total, "EUR"),
        idempotency_key=f"refuse-{uuid.uuid4().hex[:8]}",
    )
    assert isinstance(declined, ChargeDeclined) and declined.payment_intent_id
    store.mark_paid(
        invoice.id,
        payment_ref=declined.payment_intent_id,
        amount=invoice.total,
        at=invoice.created_at,
    )
    notes_before = counts(engine)[1:]
    refused = await live_api.post(
        f"/v1/ops/invoices/{invoice.id}/refunds", json=body(amount=300), headers=OPS_AUTH
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "gateway_refused"
    (failed,) = store.list_refunds(invoice_id=invoice.id)
    assert failed.status == "failed" and failed.failure
    assert counts(engine)[1:] == notes_before  # no credit note, no entry
    assert store.refundable(invoice.id).refundable == invoice.total
