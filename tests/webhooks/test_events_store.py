"""The processed/parked events repository on both backends, and its migration."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import stores.gateway_events as store
from ledger.db import make_engine
from ledger.migrate import current, downgrade, upgrade
from ledger.schema import Base

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path, events_db_url):
    if request.param == "sqlite":
        url = f"sqlite+pysqlite:///{tmp_path}/events.db"
        upgrade(url)
        return url
    return events_db_url


def record(conn, event_id, now=NOW):
    return store.record_received(
        conn,
        event_id=event_id,
        source="stripe",
        event_type="invoice.paid",
        subscription_id="sub_1",
        raw_body=json.dumps({"id": event_id}),
        now=now,
        lease=LEASE,
    )


def test_delivery_states(db_url):
    engine = make_engine(db_url)
    event_id = f"evt_{uuid.uuid4().hex}"
    try:
        with engine.begin() as conn:
            assert record(conn, event_id) is True
            assert record(conn, event_id) is False
            assert store.status_of(conn, event_id) == "received"
            # The inserting request holds the claim; nobody else may take it yet.
            assert not store.claim_for_delivery(conn, event_id, now=NOW + LEASE / 2, lease=LEASE)
            # A crashed holder's claim expires.
            assert store.claim_for_delivery(conn, event_id, now=NOW + LEASE * 2, lease=LEASE)
            store.release_claim(conn, event_id)
            assert store.claim_for_delivery(conn, event_id, now=NOW + LEASE * 2, lease=LEASE)
            store.mark_delivered(conn, event_id, now=NOW + LEASE * 3)
            assert store.status_of(conn, event_id) == "delivered"
            assert not store.claim_for_delivery(conn, event_id, now=NOW + LEASE * 10, lease=LEASE)
            assert store.status_of(conn, "evt_unknown_anywhere") is None
    finally:
        engine.dispose()


def received(event_id, subscription_id="sub_1"):
    return store.ReceivedEvent(
        event_id=event_id,
        source="stripe",
        event_type="invoice.paid",
        subscription_id=subscription_id,
        raw_body=json.dumps({"id": event_id}),
    )


def test_grouped_recording_claims_each_deliverable_event_once(db_url):
    engine = make_engine(db_url)
    fresh, repeated, held, expired, delivered = (f"evt_{uuid.uuid4().hex}" for _ in range(5))
    try:
        with engine.begin() as conn:
            for event_id in (held, expired, delivered):
                assert record(conn, event_id, now=NOW - LEASE * 2 if event_id != held else NOW)
            store.mark_delivered_many(conn, [delivered], now=NOW)

            mine = store.record_or_claim_many(
                conn,
                [received(e) for e in (fresh, repeated, repeated, held, expired, delivered)],
                now=NOW,
                lease=LEASE,
            )

            # New rows and the abandoned claim are the caller's; a live claim and a
            # delivered event are not.
            assert mine == {fresh, repeated, expired}
            assert store.status_of(conn, delivered) == "delivered"
            assert store.status_of(conn, fresh) == "received"
            # The claims just taken are live: a second pass takes nothing.
            again = [received(e) for e in (fresh, repeated, held, expired)]
            assert store.record_or_claim_many(conn, again, now=NOW, lease=LEASE) == set()
            assert store.record_or_claim_many(conn, [], now=NOW, lease=LEASE) == set()
    finally:
        engine.dispose()


def test_parking_is_recorded_once_and_listed(db_url):
    engine = make_engine(db_url)
    event_id = f"evt_{uuid.uuid4().hex}"
    try:
        with engine.begin() as conn:
            args = dict(
                event_id=event_id,
                source="relay",
                event_type="charge.refunded",
                object_type="charge",
                object_id="ch_1",
                subscription_id=None,
                reason="unsupported_type",
                raw_body="{}",
                now=NOW,
            )
            assert store.record_parked(conn, **args) is True
            assert store.record_parked(conn, **args) is False
            assert store.status_of(conn, event_id) == "parked"
            rows = [r for r in store.list_parked(conn, limit=500) if r.event_id == event_id]
            assert len(rows) == 1
            assert rows[0].reason == "unsupported_type"
            assert rows[0].parked_at == NOW
    finally:
        engine.dispose()


def test_the_migration_matches_the_models_and_downgrades(tmp_path):
    url = f"sqlite+pysqlite:///{tmp_path}/migrate.db"
    upgrade(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata
            )
        assert [d for d in diff if "events" in repr(d)] == []
    finally:
        engine.dispose()
    downgrade(url, "0001_ledger")
    assert current(url) == "0001_ledger"
    upgrade(url, "0002_gateway_events")
    assert current(url) == "0002_gateway_events"
