"""Health, readiness and the ops trial balance over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from dunwell.settings import Settings
from ledger import chart
from ledger.db import make_engine
from ledger.entries import EntryRequest
from ledger.migrate import upgrade
from ledger.posting import Ledger
from tests.conftest import create_database, drop_database


@pytest.fixture
def db_url() -> Iterator[str]:
    url = create_database()
    upgrade(url)
    yield url
    drop_database(url)


def client_for(url: str, temporal_address: str = "127.0.0.1:1") -> TestClient:
    settings = Settings(env="test", database_url=url, temporal_address=temporal_address)
    return TestClient(create_app(settings))


def test_trial_balance_requires_the_api_key(db_url: str) -> None:
    with client_for(db_url) as client:
        response = client.get("/v1/ops/ledger/trial-balance")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        wrong = client.get("/v1/ops/ledger/trial-balance", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_trial_balance_reports_posted_entries(db_url: str) -> None:
    engine = make_engine(db_url)
    ledger = Ledger(engine)
    ledger.get_or_create_accounts([chart.cash("JPY"), chart.revenue("JPY")])
    ledger.post(
        EntryRequest.transfer(
            idempotency_key="k1",
            effective_at=datetime(2026, 1, 1, tzinfo=UTC),
            description="sale",
            debit="cash:JPY",
            credit="revenue:JPY",
            amount=500,
            currency="JPY",
        )
    )
    engine.dispose()
    with client_for(db_url) as client:
        body = client.get(
            "/v1/ops/ledger/trial-balance", headers={"Authorization": "Bearer dw_dev_ops_key"}
        ).json()
    assert body["balanced"] is True
    assert body["currencies"] == [{"currency": "JPY", "debits": 500, "credits": 500, "net": 0}]


def test_trial_balance_rejects_a_naive_timestamp(db_url: str) -> None:
    with client_for(db_url) as client:
        response = client.get(
            "/v1/ops/ledger/trial-balance",
            params={"at": "2026-01-01T00:00:00"},
            headers={"Authorization": "Bearer dw_dev_ops_key"},
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_readiness_reports_an_unreachable_temporal(db_url: str) -> None:
    with client_for(db_url) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"database": True, "temporal": False}


def test_unknown_route_uses_the_error_shape(db_url: str) -> None:
    with client_for(db_url) as client:
        response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
