"""The ops API drives dunning through Temporal updates; validators refuse with 409."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from api.app import create_app
from billing.dunning import EndAction, InvoiceEndAction
from dunwell.settings import PLACEHOLDER_OPS_API_KEY, Settings
from tests.dunning_workflow.harness import Dunning, decline_of
from tests.support.audit import audit_rows

AUTH = {"Authorization": f"Bearer {PLACEHOLDER_OPS_API_KEY}"}


@pytest.fixture
async def http(dunning: Dunning) -> AsyncIterator[httpx.AsyncClient]:
    url = dunning.engine.url.render_as_string(hide_password=False)
    app = create_app(Settings(env="test", database_url=url), temporal_client=dunning.client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            yield client


async def test_pause_resume_retry_now_and_end_through_the_api(
    dunning: Dunning, http: httpx.AsyncClient
) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    scripted.decline("decline_insufficient_funds")
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    await dunning.eventually(handle, lambda v: v.decision.kind == "retry_at")
    base = f"/v1/ops/dunning/{invoice.id}"

    assert (await http.get(base)).status_code == 401
    shown = await http.get(base, headers=AUTH)
    assert shown.status_code == 200
    assert shown.json()["phase"] == "scheduled" and shown.json()["policy"] == "standard@v2"

    refused = await http.post(f"{base}/resume", headers=AUTH)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_paused"

    paused = await http.post(f"{base}/pause", headers=AUTH)
    assert paused.status_code == 200 and paused.json()["paused_by_ops"] is True
    assert paused.json()["next_retry_at"] is None
    again = await http.post(f"{base}/pause", headers=AUTH)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_paused"
    blocked = await http.post(f"{base}/retry-now", headers=AUTH)
    assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "paused"

    resumed = await http.post(f"{base}/resume", headers=AUTH)
    assert resumed.status_code == 200 and resumed.json()["phase"] == "scheduled"

    retried = await http.post(f"{base}/retry-now", headers=AUTH)
    assert retried.status_code == 200
    await dunning.eventually(
        handle, lambda v: len(v.state.attempts) == 2 and not v.charge_in_flight
    )
    assert scripted.keys == [f"{invoice.id}:dunning:2"]

    ended = await http.post(
        f"{base}/end",
        headers=AUTH,
        json={"action": "mark_unpaid", "invoice_action": "void_via_credit_note"},
    )
    assert ended.status_code == 200 and ended.json()["phase"] == "stopped"
    result = await handle.result()
    assert result.reason == "ops_ended"
    assert result.end_action is EndAction.MARK_UNPAID
    assert result.invoice_end_action is InvoiceEndAction.VOID_VIA_CREDIT_NOTE
    assert result.credit_note_id is not None
    assert dunning.store.get(invoice.id).status == "void"

    over = await http.post(f"{base}/pause", headers=AUTH)
    assert over.status_code == 409 and over.json()["error"]["code"] == "dunning_finished"
    bad = await http.post(f"{base}/end", headers=AUTH, json={"action": "explode"})
    assert bad.status_code == 422

    # Each accepted action is in the audit log with its outcome; the malformed one is not.
    url = dunning.engine.url.render_as_string(hide_password=False)
    written = audit_rows(url, target=f"invoice:{invoice.id}")
    assert [(r.action, r.outcome) for r in written] == [
        ("dunning.resume", "not_paused"),
        ("dunning.pause", "done"),
        ("dunning.pause", "already_paused"),
        ("dunning.retry_now", "paused"),
        ("dunning.resume", "done"),
        ("dunning.retry_now", "done"),
        ("dunning.end", "done"),
        ("dunning.pause", "dunning_finished"),
    ]
    assert {r.actor for r in written} == {"ops"}
    ended_row = written[6]
    assert ended_row.after["request"] == {
        "action": "mark_unpaid",
        "invoice_action": "void_via_credit_note",
    }
    assert ended_row.after["state"]["phase"] == "stopped"


async def test_unknown_invoice_is_404(dunning: Dunning, http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/ops/dunning/inv_nope/pause", headers=AUTH)
    assert response.status_code == 404
    assert (await http.get("/v1/ops/dunning/inv_nope", headers=AUTH)).status_code == 404


async def test_retry_now_and_end_are_refused_while_a_charge_is_in_flight(
    dunning: Dunning, http: httpx.AsyncClient
) -> None:
    scripted = dunning.scripted
    assert scripted is not None
    gate = threading.Event()
    scripted.decline("decline_insufficient_funds", gate=gate)
    invoice = dunning.invoice()
    handle = await dunning.start(invoice, first_decline=decline_of("decline_insufficient_funds"))
    await dunning.eventually(handle, lambda v: v.decision.kind == "retry_at")
    base = f"/v1/ops/dunning/{invoice.id}"
    assert (await http.post(f"{base}/retry-now", headers=AUTH)).status_code == 200
    await asyncio.to_thread(scripted.wait_for_charges, 1)

    for action in ("retry-now", "end"):
        response = await http.post(f"{base}/{action}", headers=AUTH, json={})
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "charge_in_flight"
    gate.set()
    await dunning.eventually(handle, lambda v: not v.charge_in_flight)
    assert (await http.post(f"{base}/end", headers=AUTH, json={})).status_code == 200
    result = await handle.result()
    assert result.reason == "ops_ended" and result.end_action is EndAction.CANCEL
    assert scripted.charge_count() == 1 and scripted.unscripted == 0
