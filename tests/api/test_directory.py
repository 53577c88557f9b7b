"""The customer and subscription directory: its revision matches its table descriptions,
and ownership lookups never cross customers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import MetaData

from billing.catalog import BillingAddress
from ledger.db import make_engine
from ledger.migrate import upgrade
from stores import customers as directory

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def _customer(customer_id: str) -> directory.CustomerRecord:
    return directory.CustomerRecord(
        id=customer_id,
        email=f"{customer_id}@example.test",
        name=customer_id,
        address=BillingAddress("FR", None, "75001", "Paris", "1 rue de Rivoli"),
        tax_id=None,
        timezone="Europe/Paris",
        gateway_customer_id=f"cus_{customer_id}",
        created_at=NOW,
    )


def _subscription(subscription_id: str, customer_id: str) -> directory.SubscriptionRecord:
    return directory.SubscriptionRecord(
        id=subscription_id,
        customer_id=customer_id,
        plan_id="pro-monthly",
        currency="EUR",
        workflow_id=f"subscription-{subscription_id}",
        created_at=NOW,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def directory_url(request: pytest.FixtureRequest, tmp_path: Path, api_db_url: str) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'directory.db'}"
        upgrade(url)
        return url
    return api_db_url


def test_the_revision_makes_exactly_the_described_tables(directory_url: str) -> None:
    described = MetaData()
    for table in (directory.customers, directory.subscriptions):
        table.to_metadata(described)
    engine = make_engine(directory_url)
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}), described
        )
    engine.dispose()
    ours = [d for d in diff if "customers" in repr(d) or "subscriptions" in repr(d)]
    assert ours == []


def test_ownership_lookups_never_cross_customers(directory_url: str) -> None:
    suffix = datetime.now(UTC).strftime("%H%M%S%f")
    alice, bob = f"alice{suffix}", f"bob{suffix}"
    engine = make_engine(directory_url)
    with engine.begin() as conn:
        directory.insert_customer(conn, _customer(alice))
        directory.insert_customer(conn, _customer(bob))
        directory.insert_subscription(conn, _subscription(f"s1{suffix}", alice))
        directory.insert_subscription(conn, _subscription(f"s2{suffix}", alice))
        with pytest.raises(directory.DuplicateRecord):
            directory.insert_subscription(conn, _subscription(f"s1{suffix}", bob))
    with engine.connect() as conn:
        assert directory.subscription_of_customer(conn, bob, f"s1{suffix}") is None
        mine = directory.subscription_of_customer(conn, alice, f"s1{suffix}")
        assert mine is not None and mine.workflow_id == f"subscription-s1{suffix}"
        assert [s.id for s in directory.list_subscriptions(conn, alice)] == [
            f"s1{suffix}",
            f"s2{suffix}",
        ]
        assert directory.list_subscriptions(conn, bob) == []
        record = directory.get_customer(conn, alice)
        assert record is not None and record.profile().address.city == "Paris"
    engine.dispose()
