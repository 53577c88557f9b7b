"""Ops API for outbound deliveries: listed with every attempt and the receiver's answer,
one event or a time range replayed (due at once, the same event id), failing endpoints
listed and re-armed; every refusal names its code and changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from dunwell.settings import Settings
from ledger import unit_of_work
from ledger.db import make_engine
from ledger.outbound import OutboxEvent, delivery, endpoints, outbox, reads
from tests.api.conftest import AUTH, OPS_AUTH

OPS = "/v1/ops/outbound"
T0 = datetime(2026, 6, 1, 12, tzinfo=UTC)


@pytest.fixture
def engine(offline_settings: Settings) -> Iterator[Engine]:
    made = make_engine(offline_settings.database_url)
    yield made
    made.dispose()


def emit(engine: Engine, event_type: str, at: datetime) -> OutboxEvent:
    subscription_id = f"sub_{uuid.uuid4().hex[:8]}"
    event = OutboxEvent(
        key=f"ops-test:{uuid.uuid4().hex}",
        type=event_type,
        occurred_at=at,
        data={"subscription_id": subscription_id},
        subscription_id=subscription_id,
    )
    unit_of_work.transact(engine, lambda c: outbox.record(c, [event], at=at))
    return event


def mine(engine: Engine, endpoint_id: str, event_id: str) -> list[reads.DeliveryRow]:
    """The event's delivery to this test's endpoint (others in the database take the
    same types)."""
    return [d for d in reads.deliveries_of(engine, event_id) if d.endpoint_id == endpoint_id]


def answer(engine: Engine, endpoint_id: str, event_id: str, status: int, body: str) -> None:
    (row,) = mine(engine, endpoint_id, event_id)
    outcome = delivery.Outcome(row.id, T0, status, None, body, 12)
    unit_of_work.transact(engine, lambda c: delivery.record(c, endpoint_id, [outcome], T0))


async def deliveries(http: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    response = await http.get(f"{OPS}/deliveries", params=params, headers=OPS_AUTH)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_deliveries_show_attempts_and_a_replay_makes_one_due_again(
    offline_api: httpx.AsyncClient, engine: Engine
) -> None:
    endpoint, _ = endpoints.register(
        engine, url="http://127.0.0.1:9/x", event_types=["invoice.paid"], description="", at=T0
    )
    event = emit(engine, "invoice.paid", T0)
    answer(engine, endpoint.id, event.id, 500, "oops " * 1000)
    answer(engine, endpoint.id, event.id, 200, "ok")

    (shown,) = await deliveries(offline_api, endpoint_id=endpoint.id)
    assert (shown["event_id"], shown["status"], shown["attempts"]) == (event.id, "delivered", 2)
    assert [a["status_code"] for a in shown["history"]] == [500, 200]
    assert len(shown["history"][0]["response_body"]) == delivery.BODY_KEPT
    assert await deliveries(offline_api, endpoint_id=endpoint.id, status="pending") == []
    assert shown["id"] in [d["id"] for d in await deliveries(offline_api, event_id=event.id)]

    replayed = await offline_api.post(f"{OPS}/events/{event.id}/replay", json={}, headers=OPS_AUTH)
    assert replayed.status_code == 200, replayed.text
    # Every endpoint that had it (others in this database take invoice.paid too).
    assert replayed.json()["events"] == 1 and endpoint.id in replayed.json()["endpoint_ids"]
    (again,) = await deliveries(offline_api, event_id=event.id, endpoint_id=endpoint.id)
    assert again["status"] == "pending" and again["id"] == shown["id"], "same delivery, same id"
    assert datetime.fromisoformat(again["next_attempt_at"]) > T0


async def test_a_range_replays_every_event_in_it(
    offline_api: httpx.AsyncClient, engine: Engine
) -> None:
    start = datetime(2031, 1, 1, tzinfo=UTC) + timedelta(minutes=uuid.uuid4().int % 10_000)
    endpoint, _ = endpoints.register(
        engine, url="http://127.0.0.1:9/x", event_types=["invoice.paid"], description="", at=T0
    )
    inside = [emit(engine, "invoice.paid", start + timedelta(seconds=n)) for n in range(3)]
    outside = emit(engine, "invoice.paid", start + timedelta(hours=1))
    for event in [*inside, outside]:
        answer(engine, endpoint.id, event.id, 200, "ok")
    body = {
        "since": start.isoformat(),
        "until": (start + timedelta(minutes=1)).isoformat(),
        "endpoint_id": endpoint.id,
    }
    replayed = await offline_api.post(f"{OPS}/replay", json=body, headers=OPS_AUTH)
    assert replayed.status_code == 200, replayed.text
    assert replayed.json() == {"events": 3, "endpoint_ids": [endpoint.id]}
    statuses = {
        d["event_id"]: d["status"]
        for d in await deliveries(offline_api, endpoint_id=endpoint.id, limit="10")
    }
    assert statuses == {**{e.id: "pending" for e in inside}, outside.id: "delivered"}


async def refused(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], status: int, code: str
) -> None:
    before = await deliveries(http, limit="500")
    response = await http.post(path, json=body, headers=OPS_AUTH)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert await deliveries(http, limit="500") == before, "a refused replay changed something"


async def test_refused_replays_change_nothing(
    offline_api: httpx.AsyncClient, engine: Engine
) -> None:
    endpoint, _ = endpoints.register(
        engine, url="http://127.0.0.1:9/x", event_types=["invoice.paid"], description="", at=T0
    )
    event = emit(engine, "invoice.paid", T0)
    other = emit(engine, "access.revoked", T0)
    await refused(offline_api, f"{OPS}/events/evt_missing/replay", {}, 404, "event_not_found")
    await refused(
        offline_api,
        f"{OPS}/events/{event.id}/replay",
        {"endpoint_id": "we_missing"},
        404,
        "endpoint_not_found",
    )
    await refused(
        offline_api,
        f"{OPS}/events/{other.id}/replay",
        {"endpoint_id": endpoint.id},
        422,
        "event_type_not_wanted",
    )
    day = {"since": "2026-06-02T00:00:00+00:00", "until": "2026-06-01T00:00:00+00:00"}
    await refused(offline_api, f"{OPS}/replay", day, 422, "invalid_range")
    wide = {"since": "2026-01-01T00:00:00+00:00", "until": "2026-06-01T00:00:00+00:00"}
    await refused(offline_api, f"{OPS}/replay", wide, 422, "range_too_wide")
    naive = {"since": "2026-06-01T00:00:00", "until": "2026-06-02T00:00:00+00:00"}
    await refused(offline_api, f"{OPS}/replay", naive, 422, "naive_datetime")
    unknown = {**day, "since": "2026-05-01T00:00:00+00:00", "endpoint_id": "we_missing"}
    await refused(offline_api, f"{OPS}/replay", unknown, 404, "endpoint_not_found")
    listed = await offline_api.get(f"{OPS}/deliveries", params={"status": "lost"}, headers=OPS_AUTH)
    assert listed.status_code == 422


async def test_the_ops_routes_take_an_ops_key(offline_api: httpx.AsyncClient) -> None:
    denied = await offline_api.get(f"{OPS}/deliveries", headers=AUTH)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "ops_key_required"
    replay = await offline_api.post(f"{OPS}/events/evt_x/replay", json={}, headers=AUTH)
    assert replay.status_code == 403


async def test_failing_endpoints_are_listed_and_enabling_makes_their_queue_due(
    offline_api: httpx.AsyncClient, engine: Engine
) -> None:
    endpoint, _ = endpoints.register(
        engine, url="http://127.0.0.1:9/x", event_types=["invoice.paid"], description="", at=T0
    )
    event = emit(engine, "invoice.paid", T0)
    answer(engine, endpoint.id, event.id, 503, "down")
    (row,) = mine(engine, endpoint.id, event.id)
    late = T0 + timedelta(days=3, minutes=1)
    outcome = delivery.Outcome(row.id, late, None, "ConnectError", "", 1)
    gave_up = unit_of_work.transact(
        engine, lambda c: delivery.record(c, endpoint.id, [outcome], late)
    )
    assert gave_up
    failing = await offline_api.get(
        "/v1/webhook-endpoints", params={"status": "failing"}, headers=AUTH
    )
    assert endpoint.id in [e["id"] for e in failing.json()["items"]]
    enabled = await offline_api.post(
        f"/v1/webhook-endpoints/{endpoint.id}/enable", json={"reason": "fixed"}, headers=AUTH
    )
    assert enabled.json()["status"] == "enabled"
    (row,) = mine(engine, endpoint.id, event.id)
    assert row.status == "pending" and row.first_failed_at is None
    assert abs(row.next_attempt_at - datetime.now(UTC)) < timedelta(minutes=1), "due now"
