"""Invoice fixtures: an own PostgreSQL database and a SQLite file, migrated once per
session (the tax liability tests sum everything in a period, so no other suite may
write documents here); tests keep apart by fresh customers and keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine

from ledger.db import make_engine
from ledger.invoices import CustomerTaxDetails, DraftLine, InvoiceStore, InvoiceView
from ledger.migrate import upgrade
from tax import (
    Address,
    BuiltinTaxEngine,
    ExemptionCertificate,
    Registration,
    TaxableLine,
    TaxCustomer,
    TaxQuote,
    TaxType,
)
from tests.conftest import create_database, drop_database

BACKENDS = ["sqlite", "postgresql"]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SINCE = date(2020, 1, 1)
GERMANY = Address("DE")

REGISTRATIONS = (
    Registration("EU", TaxType.VAT, SINCE, None, "EU-OSS-1"),
    Registration("GB", TaxType.VAT, SINCE, None, "GB123"),
    Registration("JP", None, SINCE, None, "T123"),
    Registration("CA", TaxType.GST, SINCE, None, "CA-GST"),
    Registration("CA-QC", TaxType.QST, SINCE, None, "QST-1"),
    Registration("US-TX", TaxType.SALES_TAX, SINCE, None, "TX-1"),
    Registration("US-NY", TaxType.SALES_TAX, SINCE, None, "NY-1"),
)
TAX_ENGINE = BuiltinTaxEngine(seller_country="IE")


@pytest.fixture(scope="session")
def inv_pg_url() -> Iterator[str]:
    url = create_database("dunwell_invoices")
    try:
        upgrade(url)
        yield url
    finally:
        drop_database(url)


@pytest.fixture(scope="session")
def inv_sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('invoices') / 'dunwell.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def _engines(inv_pg_url: str, inv_sqlite_url: str) -> Iterator[dict[str, Engine]]:
    engines = {
        "postgresql": make_engine(inv_pg_url, pool_size=10, max_overflow=10),
        "sqlite": make_engine(inv_sqlite_url),
    }
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(_engines: dict[str, Engine], backend: str) -> Engine:
    return _engines[backend]


@pytest.fixture
def pg_engine(_engines: dict[str, Engine]) -> Engine:
    return _engines["postgresql"]


@pytest.fixture
def store(engine: Engine) -> InvoiceStore:
    return InvoiceStore(engine)


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def details_for(address: Address, vat_id: str | None = None) -> CustomerTaxDetails:
    return CustomerTaxDetails(address.country, address.region, vat_id, "Customer Ltd", "1 Road")


def quote_for(
    view: InvoiceView,
    address: Address,
    at: datetime,
    *,
    vat_id: str | None = None,
    certificates: Sequence[ExemptionCertificate] = (),
) -> TaxQuote:
    lines = [
        TaxableLine(line.line_id, line.amount, view.currency, line.tax_behavior)
        for line in view.lines
    ]
    customer = TaxCustomer(address, vat_id=vat_id, exemption_certificates=tuple(certificates))
    return TAX_ENGINE.quote(lines, customer, REGISTRATIONS, at)


def issue(
    store: InvoiceStore,
    lines: Sequence[DraftLine],
    *,
    address: Address = GERMANY,
    currency: str = "EUR",
    at: datetime = T0,
    customer_id: str | None = None,
    vat_id: str | None = None,
    certificates: Sequence[ExemptionCertificate] = (),
) -> InvoiceView:
    """Create a draft, quote it with the built-in engine and finalize it."""
    draft = store.create_draft(
        key=fresh("inv"),
        customer_id=customer_id or fresh("cus"),
        subscription_id=fresh("sub"),
        currency=currency,
        lines=lines,
    )
    quote = quote_for(draft, address, at, vat_id=vat_id, certificates=certificates)
    return store.finalize(draft.id, quote=quote, customer_tax=details_for(address, vat_id), at=at)
