"""The billing activities read the seller's registrations again once what they read is
older than the TTL: a registration recorded while the worker runs applies from then on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.billing import (
    BillingActivities,
    InvoiceLineInput,
    NoCertificates,
    TaxQuoteRequest,
)
from activities.tax_engines import make_engine as make_tax_engine
from billing.catalog import load_catalog
from ledger.db import make_engine
from ledger.invoices import InvoiceStore
from tax import Registration
from tests.workflows.harness import REGISTRATIONS, profile

AT = datetime(2026, 3, 1, tzinfo=UTC)
TTL = timedelta(seconds=30)
LINE = InvoiceLineInput(line_id="pro", description="Pro", amount=1000, tax_inclusive=False)


class Ledger:
    """Stands in for the compliance ledger: counts reads, registrations recorded later."""

    def __init__(self) -> None:
        self.recorded: list[Registration] = []
        self.reads = 0

    def registrations(self) -> list[Registration]:
        self.reads += 1
        return list(self.recorded)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def billing(ledger: Ledger, clock: Clock) -> BillingActivities:
    return BillingActivities(
        invoices=InvoiceStore(make_engine("sqlite://")),
        tax_engine=make_tax_engine("builtin", seller_country="IE"),
        gateway=None,  # type: ignore[arg-type]  # quotes never reach the gateway
        registrations=ledger,
        catalog=load_catalog(),
        certificates=NoCertificates(),
        registrations_ttl=TTL,
        clock=clock,
    )


async def quoted_tax(acts: BillingActivities) -> int:
    """The tax quoted on 10.00 EUR to a consumer in Germany."""
    quote = await acts.quote_tax(TaxQuoteRequest(profile("cust_1"), "EUR", [LINE], AT))
    return quote.tax_total


async def test_quotes_within_the_ttl_read_the_registrations_once() -> None:
    ledger, clock = Ledger(), Clock()
    acts = billing(ledger, clock)
    await quoted_tax(acts)
    clock.now += TTL.total_seconds() - 0.001
    await quoted_tax(acts)
    assert ledger.reads == 1


async def test_a_registration_recorded_meanwhile_applies_once_the_ttl_has_passed() -> None:
    ledger, clock = Ledger(), Clock()
    acts = billing(ledger, clock)
    assert await quoted_tax(acts) == 0, "not registered: no tax collected"
    ledger.recorded = list(REGISTRATIONS)  # the One-Stop Shop registration
    assert await quoted_tax(acts) == 0, "still what was read"
    clock.now += TTL.total_seconds()
    # Registered for the One-Stop Shop, the seller charges the German customer German VAT.
    assert await quoted_tax(acts) == 190
    assert ledger.reads == 2
