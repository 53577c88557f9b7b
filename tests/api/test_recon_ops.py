"""Ops API for reconciliation: the exceptions queue and payout reports (database only),
and payout webhooks handed to ``recon-payout-<id>`` once however often they arrive."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from billing.reconciliation.model import ExceptionClass, Finding, Payout
from dunwell.settings import PLACEHOLDER_WEBHOOK_SECRET
from dunwell.settlement_sim import sign
from ledger import chart
from ledger.db import make_engine
from ledger.entries import EntryRequest
from ledger.posting import Ledger
from ledger.reconciliation import runs
from ledger.reconciliation.exceptions import ExceptionStore
from ledger.unit_of_work import transact
from tests.api.conftest import OPS_AUTH, build_app, make_settings, running

AT = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def store(api_db_url: str) -> ExceptionStore:
    return ExceptionStore(make_engine(api_db_url))


def _open(store: ExceptionStore, payout: str) -> int:
    key = f"amount:{payout}:txn_{uuid.uuid4().hex[:8]}"
    finding = Finding(
        ExceptionClass.AMOUNT, key, "EUR", 1_000, "txn_1", {"ledger_ref": "pi_1"}, payout
    )
    store.open([finding], actor="recon-payout-test", at=AT)
    return next(x.id for x in store.list(payout_id=payout) if x.key == key)


async def test_exceptions_are_listed_shown_and_worked(
    offline_api: httpx.AsyncClient, store: ExceptionStore, api_db_url: str
) -> None:
    payout = f"po_{uuid.uuid4().hex[:10]}"
    xid = _open(store, payout)
    listed = await offline_api.get(
        "/v1/ops/recon/exceptions",
        params={"payout_id": payout, "class": "amount"},
        headers=OPS_AUTH,
    )
    assert listed.status_code == 200
    assert [x["id"] for x in listed.json()] == [xid]
    assert listed.json()[0]["evidence"] == {"ledger_ref": "pi_1"}

    url = f"/v1/ops/recon/exceptions/{xid}/actions"
    acked = await offline_api.post(
        url, json={"action": "acknowledge", "actor": "ana@ops"}, headers=OPS_AUTH
    )
    assert acked.status_code == 200 and acked.json()["status"] == "acknowledged"

    refused = await offline_api.post(
        url, json={"action": "resolve", "actor": "ana@ops"}, headers=OPS_AUTH
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_action"
    assert (await offline_api.get(f"/v1/ops/recon/exceptions/{xid}", headers=OPS_AUTH)).json()[
        "status"
    ] == "acknowledged"

    ledger = Ledger(make_engine(api_db_url))
    a, b = ledger.get_or_create_accounts([chart.gateway_clearing("EUR"), chart.revenue("EUR")])
    fix = ledger.post(
        EntryRequest.transfer(
            idempotency_key=f"fix-{xid}", effective_at=AT, description="adjust", debit=a.code,
            credit=b.code, amount=1, currency="EUR",
        )
    )  # fmt: skip
    resolved = await offline_api.post(
        url,
        json={
            "action": "resolve",
            "actor": "bo@ops",
            "adjusting_entry_id": fix.id,
            "note": "short by 1",
        },
        headers=OPS_AUTH,
    )
    assert resolved.status_code == 200
    body = resolved.json()
    assert (body["status"], body["adjusting_entry_id"], body["closed_by"]) == (
        "resolved",
        fix.id,
        "bo@ops",
    )
    assert [a["action"] for a in body["actions"]] == ["open", "acknowledge", "resolve"]

    late = await offline_api.post(
        url, json={"action": "ignore", "actor": "ana@ops"}, headers=OPS_AUTH
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "exception_state"


@pytest.mark.parametrize(
    ("path", "method", "body", "status"),
    [
        ("/v1/ops/recon/exceptions/999999999", "GET", None, 404),
        (
            "/v1/ops/recon/exceptions/999999999/actions",
            "POST",
            {"action": "ignore", "actor": "a"},
            404,
        ),
        ("/v1/ops/recon/exceptions?status=closed", "GET", None, 422),
        ("/v1/ops/recon/exceptions?limit=0", "GET", None, 422),
        ("/v1/ops/recon/payouts/po_none/report", "GET", None, 404),
        ("/v1/ops/recon/payouts/ch_1/run", "POST", None, 422),
    ],
)
async def test_bad_requests_are_refused(
    offline_api: httpx.AsyncClient, path: str, method: str, body: object, status: int
) -> None:
    response = await offline_api.request(method, path, json=body, headers=OPS_AUTH)
    assert response.status_code == status
    assert (await offline_api.request(method, path, json=body)).status_code == 401


async def test_bad_action_bodies_change_nothing(
    offline_api: httpx.AsyncClient, store: ExceptionStore
) -> None:
    xid = _open(store, f"po_{uuid.uuid4().hex[:10]}")
    url = f"/v1/ops/recon/exceptions/{xid}/actions"
    for body in (
        {"action": "close", "actor": "a"},
        {"action": "ignore"},
        {"action": "ignore", "actor": ""},
    ):
        response = await offline_api.post(url, json=body, headers=OPS_AUTH)
        assert response.status_code == 422
    assert store.get(xid).status.value == "open"


async def test_payout_report_as_json_and_csv(
    offline_api: httpx.AsyncClient, api_db_url: str
) -> None:
    payout = Payout(f"po_{uuid.uuid4().hex[:10]}", 900, "EUR", "paid", AT, "txn_po")
    engine = make_engine(api_db_url)
    transact(engine, lambda c: runs.start_run(c, payout, at=AT))
    transact(engine, lambda c: runs.finish_run(c, payout, at=AT, waiting=False))
    url = f"/v1/ops/recon/payouts/{payout.id}/report"
    body = (await offline_api.get(url, headers=OPS_AUTH)).json()
    assert (body["payout_id"], body["payout_amount"], body["exceptions"]) == (payout.id, 900, 0)
    csv = await offline_api.get(url, params={"format": "csv"}, headers=OPS_AUTH)
    assert csv.headers["content-type"].startswith("text/csv")
    header, row = csv.text.strip().splitlines()
    assert header.startswith("payout_id,currency,payout_amount") and row.startswith(
        f"{payout.id},EUR,900"
    )
    listed = (await offline_api.get("/v1/ops/recon/payouts", headers=OPS_AUTH)).json()
    assert payout.id in [r["payout_id"] for r in listed]


def _signed(event: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event).encode()
    return payload, {
        "Stripe-Signature": sign(payload, PLACEHOLDER_WEBHOOK_SECRET, int(time.time())),
        "Content-Type": "application/json",
    }


@pytest.fixture
async def payout_api(
    api_db_url: str, localstripe_url: str, temporal_dev_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    """No worker on this task queue: the run is started and waits, and is ended here."""
    settings = make_settings(
        api_db_url, localstripe_url, task_queue=f"recon-{uuid.uuid4().hex[:8]}"
    )
    async with running(build_app(settings, temporal_dev_env.client)) as http:
        yield http


async def test_duplicate_payout_webhooks_make_one_run(
    payout_api: httpx.AsyncClient, temporal_dev_env: WorkflowEnvironment
) -> None:
    payout = f"po_{uuid.uuid4().hex[:10]}"
    event = {
        "id": f"evt_{payout}_paid", "object": "event", "type": "payout.paid",
        "created": int(time.time()), "data": {"object": {"id": payout, "object": "payout"}},
    }  # fmt: skip
    answers = []
    for _ in range(3):
        payload, headers = _signed(event)
        response = await payout_api.post("/webhooks/stripe", content=payload, headers=headers)
        answers.append(response.json()["status"])
    assert answers == ["accepted", "duplicate", "duplicate"]
    handle = temporal_dev_env.client.get_workflow_handle(f"recon-payout-{payout}")
    described = await handle.describe()
    assert described.status is WorkflowExecutionStatus.RUNNING
    runs_found = [
        w
        async for w in temporal_dev_env.client.list_workflows(
            f'WorkflowId = "recon-payout-{payout}"'
        )
    ]
    assert len(runs_found) == 1
    history = await handle.fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 1
    await handle.terminate("test over")

    forged = await payout_api.post(
        "/webhooks/stripe",
        content=json.dumps(event).encode(),
        headers={"Stripe-Signature": "t=1,v1=00"},
    )
    assert forged.status_code == 400
