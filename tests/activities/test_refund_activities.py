"""``refunds.sync_charge`` against gateway answers localstripe cannot give (a refund
that failed after it was booked while pending, one in another currency): a fake gateway
stands in for Stripe; the invoice store and the exceptions queue are real (PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from temporalio.testing import ActivityEnvironment

from activities.refunds import RefundActivities
from billing.gateway import ChargeSnapshot, RefundResult
from billing.money import Money
from ledger.db import make_engine
from ledger.invoices import DraftLine, InvoiceStore
from ledger.migrate import upgrade
from ledger.reconciliation.exceptions import ExceptionStore
from tests.conftest import create_database, drop_database
from tests.invoices.conftest import issue


class FakeGateway:
    """The gateway's record of one charge and its refunds, as a test sets it."""

    def __init__(self, charge: ChargeSnapshot, refunds: list[RefundResult]) -> None:
        self.charge = charge
        self.refunds = refunds

    async def retrieve_charge(self, charge_id: str) -> ChargeSnapshot:
        assert charge_id == self.charge.id
        return self.charge

    async def list_refunds(self, charge_id: str) -> tuple[RefundResult, ...]:
        return tuple(self.refunds)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    url = create_database("dunwell_refund_acts")
    upgrade(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()
    drop_database(url)


def setup(
    engine: Engine, refunds: list[RefundResult]
) -> tuple[Any, InvoiceStore, str, FakeGateway]:
    store = InvoiceStore(engine)
    invoice = issue(store, [DraftLine("a", "Plan", 1_000)])
    pi = f"pi_{uuid.uuid4().hex[:10]}"
    store.mark_paid(invoice.id, payment_ref=pi, amount=invoice.total, at=datetime.now(UTC))
    charge = ChargeSnapshot(
        f"ch_{uuid.uuid4().hex[:10]}", pi, "cus_x", Money(invoice.total, "EUR"), "succeeded"
    )
    gateway = FakeGateway(charge, refunds)
    acts = RefundActivities(gateway, store, ExceptionStore(engine))  # type: ignore[arg-type]
    return acts, store, invoice.id, gateway


async def test_a_booked_refund_that_failed_later_opens_a_status_exception(engine: Engine) -> None:
    refund = RefundResult(f"re_{uuid.uuid4().hex[:10]}", None, None, Money(500, "EUR"), "pending")
    acts, store, invoice_id, gateway = setup(engine, [refund])
    first = await ActivityEnvironment().run(acts.sync_charge, gateway.charge.id)
    assert (first.recorded, first.exceptions) == (1, 0)
    gateway.refunds = [RefundResult(refund.id, None, None, Money(500, "EUR"), "failed")]
    later = await ActivityEnvironment().run(acts.sync_charge, gateway.charge.id)
    assert (later.recorded, later.known, later.exceptions) == (0, 1, 1)
    (exc,) = [x for x in ExceptionStore(engine).list(limit=500) if x.gateway_ref == refund.id]
    assert exc.cls.value == "status" and exc.evidence["invoice"] == invoice_id
    assert len(store.list_refunds(invoice_id=invoice_id)) == 1


async def test_a_refund_in_another_currency_books_nothing(engine: Engine) -> None:
    refund = RefundResult(f"re_{uuid.uuid4().hex[:10]}", None, None, Money(500, "USD"), "succeeded")
    acts, store, invoice_id, gateway = setup(engine, [refund])
    result = await ActivityEnvironment().run(acts.sync_charge, gateway.charge.id)
    assert (result.recorded, result.exceptions) == (0, 1)
    assert store.list_refunds(invoice_id=invoice_id) == []
    (exc,) = [x for x in ExceptionStore(engine).list(limit=500) if x.gateway_ref == refund.id]
    assert exc.cls.value == "currency"


async def test_a_refund_larger_than_the_payment_books_nothing(engine: Engine) -> None:
    refund = RefundResult(
        f"re_{uuid.uuid4().hex[:10]}", None, None, Money(5_000, "EUR"), "succeeded"
    )
    acts, store, invoice_id, gateway = setup(engine, [refund])
    result = await ActivityEnvironment().run(acts.sync_charge, gateway.charge.id)
    assert (result.recorded, result.exceptions) == (0, 1)
    assert store.list_refunds(invoice_id=invoice_id) == []
    (exc,) = [x for x in ExceptionStore(engine).list(limit=500) if x.gateway_ref == refund.id]
    assert exc.cls.value == "amount"
