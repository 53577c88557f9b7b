"""Stripe webhook and relay intake against PostgreSQL and a real Temporal dev server."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.temporal_client import TemporalConnection
from dunwell.settings import Settings
from tests.webhooks.conftest import (
    OPS_API_KEY,
    RELAY_SECRET,
    build_app,
    count_rows,
    delivered_row,
    new_id,
    post_relay,
    post_stripe,
    processed_row,
    running,
    signalled_events,
    stripe_event,
)

pytestmark = [pytest.mark.postgres, pytest.mark.temporal]


async def assert_no_workflow(env: WorkflowEnvironment, subscription_id: str) -> None:
    with pytest.raises(RPCError) as err:
        await env.client.get_workflow_handle(f"subscription-{subscription_id}").describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_shutdown_writes_the_delivered_marks_still_queued(app, events_db_url):
    event = stripe_event("invoice.paid", subscription_id=new_id("sub"))
    async with running(app) as http:
        response = await post_stripe(http, event)
        assert response.json()["status"] == "accepted"
    # No waiting: leaving the app wrote the queued mark before the engine closed.
    row = processed_row(events_db_url, event["id"])
    assert row is not None and row["status"] == "delivered"


async def test_valid_event_is_recorded_and_signalled(api, events_db_url, temporal_dev_env):
    sub = new_id("sub")
    event = stripe_event("invoice.paid", subscription_id=sub)

    response = await post_stripe(api, event)

    assert response.status_code == 200, response.text
    assert response.json() == {"status": "accepted", "event_id": event["id"]}
    row = await delivered_row(events_db_url, event["id"])
    assert (row["status"], row["source"], row["subscription_id"]) == ("delivered", "stripe", sub)
    assert row["raw_body"] == response.request.content.decode()
    signals = await signalled_events(temporal_dev_env.client, sub)
    assert [s.event_id for s in signals] == [event["id"]]
    assert signals[0].type == "invoice.paid"
    assert signals[0].object_id == event["data"]["object"]["id"]
    assert signals[0].payload == event["data"]["object"]
    description = await temporal_dev_env.client.get_workflow_handle(
        f"subscription-{sub}"
    ).describe()
    assert description.workflow_type == "SubscriptionWorkflow"
    assert description.task_queue == "dunwell-webhooks-test"


async def test_second_event_signals_the_running_workflow(api, temporal_dev_env):
    sub = new_id("sub")
    first = stripe_event("invoice.created", subscription_id=sub)
    second = stripe_event("invoice.paid", subscription_id=sub)

    assert (await post_stripe(api, first)).status_code == 200
    assert (await post_stripe(api, second)).status_code == 200

    handle = temporal_dev_env.client.get_workflow_handle(f"subscription-{sub}")
    history = await handle.fetch_history()
    starts = [
        e for e in history.events if e.HasField("workflow_execution_started_event_attributes")
    ]
    assert len(starts) == 1
    signals = await signalled_events(temporal_dev_env.client, sub)
    assert [s.event_id for s in signals] == [first["id"], second["id"]]


async def test_event_for_a_closed_workflow_starts_a_new_run(api, temporal_dev_env):
    sub = new_id("sub")
    first = stripe_event("invoice.created", subscription_id=sub)
    second = stripe_event("invoice.paid", subscription_id=sub)
    assert (await post_stripe(api, first)).status_code == 200
    handle = temporal_dev_env.client.get_workflow_handle(f"subscription-{sub}")
    closed_run = (await handle.describe()).run_id
    await handle.terminate("closed by the test")

    response = await post_stripe(api, second)

    assert response.json() == {"status": "accepted", "event_id": second["id"]}
    # The handle without a run id follows the newest run: the one the event started.
    signals = await signalled_events(temporal_dev_env.client, sub)
    assert [s.event_id for s in signals] == [second["id"]]
    assert (await handle.describe()).run_id != closed_run


@pytest.mark.parametrize(
    ("case", "expected_code"),
    [
        ("wrong_secret", "invalid_signature"),
        ("stale", "stale_signature"),
        ("tampered", "invalid_signature"),
    ],
)
async def test_bad_signature_records_nothing(
    api, events_db_url, temporal_dev_env, case, expected_code
):
    sub = new_id("sub")
    event = stripe_event("invoice.paid", subscription_id=sub)
    if case == "wrong_secret":
        response = await post_stripe(api, event, secret="whsec_someone_else")
    elif case == "stale":
        response = await post_stripe(api, event, timestamp=int(time.time()) - 301)
    else:
        from tests.webhooks.conftest import WEBHOOK_SECRET, hmac_header

        body = b'{"id": "%s", "type": "invoice.paid"}' % event["id"].encode()
        header = hmac_header(body, WEBHOOK_SECRET)
        response = await api.post(
            "/webhooks/stripe",
            content=body.replace(b"invoice.paid", b"invoice.void"),
            headers={"Stripe-Signature": header},
        )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == expected_code
    assert processed_row(events_db_url, event["id"]) is None
    await assert_no_workflow(temporal_dev_env, sub)


async def test_missing_signature_header_is_refused(api, events_db_url):
    event = stripe_event("invoice.paid", subscription_id=new_id("sub"))
    response = await api.post("/webhooks/stripe", json=event)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_signature"
    assert processed_row(events_db_url, event["id"]) is None


async def test_replayed_event_is_a_duplicate_and_signalled_once(
    api, events_db_url, temporal_dev_env
):
    sub = new_id("sub")
    event = stripe_event("invoice.payment_failed", subscription_id=sub)

    first = await post_stripe(api, event)
    replay = await post_stripe(api, event)

    assert first.json()["status"] == "accepted"
    assert replay.status_code == 200
    assert replay.json()["status"] == "duplicate"
    assert count_rows(events_db_url, event["id"]) == 1
    assert [s.event_id for s in await signalled_events(temporal_dev_env.client, sub)] == [
        event["id"]
    ]


async def test_duplicate_storm_records_and_signals_once(api, events_db_url, temporal_dev_env):
    sub = new_id("sub")
    event = stripe_event("invoice.paid", subscription_id=sub)

    responses = await asyncio.gather(*(post_stripe(api, event) for _ in range(50)))

    assert {r.status_code for r in responses} == {200}
    statuses = sorted(r.json()["status"] for r in responses)
    assert statuses.count("accepted") == 1
    assert statuses.count("duplicate") == 49
    assert count_rows(events_db_url, event["id"]) == 1
    assert (await delivered_row(events_db_url, event["id"]))["status"] == "delivered"
    assert len(await signalled_events(temporal_dev_env.client, sub)) == 1


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_temporal_down_answers_503_and_the_retry_delivers_once(
    settings: Settings, events_db_url, temporal_dev_env
):
    sub = new_id("sub")
    event = stripe_event("invoice.paid", subscription_id=sub)
    down = settings.model_copy(update={"temporal_address": f"127.0.0.1:{closed_port()}"})
    app = build_app(down, None)

    async with running(app) as http:
        refused = await post_stripe(http, event)
        assert refused.status_code == 503
        assert refused.headers["Retry-After"].isdigit()
        assert refused.json()["error"]["code"] == "temporal_unavailable"
        row = processed_row(events_db_url, event["id"])
        assert row is not None
        assert row["status"] == "received"
        assert row["claimed_until"] is None  # released: the retry need not wait
        await assert_no_workflow(temporal_dev_env, sub)

        # Temporal is back for the same running API.
        app.state.temporal = TemporalConnection(down, temporal_dev_env.client)
        retried = await asyncio.gather(*(post_stripe(http, event) for _ in range(5)))
        again = await post_stripe(http, event)

    assert sorted(r.json()["status"] for r in retried) == ["accepted"] + ["duplicate"] * 4
    assert again.json()["status"] == "duplicate"
    row = await delivered_row(events_db_url, event["id"])
    assert row["delivery_attempts"] == 2
    assert [s.event_id for s in await signalled_events(temporal_dev_env.client, sub)] == [
        event["id"]
    ]


async def test_abandoned_claim_is_taken_over_after_the_lease(
    api, settings, events_db_url, temporal_dev_env
):
    """A process that died between recording and signalling leaves a live claim; once it
    expires the next retry delivers."""
    from datetime import UTC, datetime, timedelta

    from ledger.db import make_engine
    from stores import gateway_events as events_store

    sub = new_id("sub")
    event = stripe_event("invoice.paid", subscription_id=sub)
    engine = make_engine(events_db_url)
    recorded_at = datetime.now(UTC) - timedelta(seconds=31)
    with engine.begin() as conn:
        assert events_store.record_received(
            conn,
            event_id=event["id"],
            source="stripe",
            event_type="invoice.paid",
            subscription_id=sub,
            raw_body="{}",
            now=recorded_at,
            lease=timedelta(seconds=30),
        )
    engine.dispose()

    response = await post_stripe(api, event)

    assert response.json()["status"] == "accepted"
    assert (await delivered_row(events_db_url, event["id"]))["status"] == "delivered"
    assert len(await signalled_events(temporal_dev_env.client, sub)) == 1


# --- relay ----------------------------------------------------------------------------


def relay_body(sub: str | None, sequence: int, event_type: str = "payment_intent.succeeded"):
    return {
        "event_id": new_id("rly"),
        "subscription_id": sub,
        "sequence": sequence,
        "type": event_type,
        "object": {"id": new_id("pi"), "object": "payment_intent", "amount": 1500},
        "created": int(time.time()),
    }


async def test_relay_event_with_good_hmac_is_signalled_with_its_sequence(
    api, events_db_url, temporal_dev_env
):
    sub = new_id("sub")
    body = relay_body(sub, 7)

    response = await post_relay(api, body)
    replay = await post_relay(api, body)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted"
    assert replay.json()["status"] == "duplicate"
    assert processed_row(events_db_url, body["event_id"])["source"] == "relay"
    (signal,) = await signalled_events(temporal_dev_env.client, sub)
    assert (signal.event_id, signal.source, signal.sequence) == (body["event_id"], "relay", 7)


@pytest.mark.parametrize(
    ("secret", "age", "expected_code"),
    [
        ("not-the-relay-secret", 0, "invalid_signature"),
        (RELAY_SECRET, 330, "stale_signature"),
        (RELAY_SECRET, -330, "stale_signature"),
    ],
)
async def test_relay_with_bad_hmac_records_nothing(
    api, events_db_url, temporal_dev_env, secret, age, expected_code
):
    sub = new_id("sub")
    body = relay_body(sub, 1)

    response = await post_relay(api, body, secret=secret, timestamp=int(time.time()) - age)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == expected_code
    assert processed_row(events_db_url, body["event_id"]) is None
    await assert_no_workflow(temporal_dev_env, sub)


async def test_relay_without_signature_is_refused(api):
    response = await api.post("/v1/events", json=relay_body(new_id("sub"), 1))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_signature"


async def test_malformed_relay_event_is_422_and_not_recorded(api, events_db_url):
    body = relay_body(new_id("sub"), 0)
    response = await post_relay(api, body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    assert processed_row(events_db_url, body["event_id"]) is None


# --- parking --------------------------------------------------------------------------


async def test_unroutable_events_are_parked_and_listed_for_ops(
    api, events_db_url, temporal_dev_env
):
    no_subscription = stripe_event(
        "invoice.paid", obj={"id": new_id("in"), "object": "invoice", "metadata": {}}
    )
    unsupported = stripe_event("charge.dispute.created", subscription_id=new_id("sub"))
    relay_unrouted = relay_body(None, 1)

    answers = [
        await post_stripe(api, no_subscription),
        await post_stripe(api, unsupported),
        await post_relay(api, relay_unrouted),
        await post_stripe(api, unsupported),  # a parked event replayed stays one row
    ]

    assert [a.status_code for a in answers] == [200] * 4
    assert [a.json()["status"] for a in answers] == ["parked", "parked", "parked", "duplicate"]
    assert processed_row(events_db_url, unsupported["id"])["status"] == "parked"

    unauthorised = await api.get("/v1/ops/parked-events")
    assert unauthorised.status_code == 401

    listed = await api.get(
        "/v1/ops/parked-events", headers={"Authorization": f"Bearer {OPS_API_KEY}"}
    )
    assert listed.status_code == 200
    by_id = {item["event_id"]: item for item in listed.json()["items"]}
    assert by_id[no_subscription["id"]]["reason"] == "no_subscription"
    assert by_id[unsupported["id"]]["reason"] == "unsupported_type"
    assert by_id[unsupported["id"]]["event_type"] == "charge.dispute.created"
    assert by_id[relay_unrouted["event_id"]]["reason"] == "no_subscription"
    assert by_id[relay_unrouted["event_id"]]["source"] == "relay"
    assert sum(item["event_id"] == unsupported["id"] for item in listed.json()["items"]) == 1


async def test_parked_listing_pages(api):
    for _ in range(3):
        await post_stripe(api, stripe_event("product.created", subscription_id=new_id("sub")))
    auth = {"Authorization": f"Bearer {OPS_API_KEY}"}

    first = (await api.get("/v1/ops/parked-events?limit=2", headers=auth)).json()
    second = (
        await api.get(f"/v1/ops/parked-events?limit=2&after={first['next_after']}", headers=auth)
    ).json()

    assert len(first["items"]) == 2
    assert first["next_after"] == first["items"][-1]["id"]
    assert second["items"][0]["id"] > first["items"][-1]["id"]
