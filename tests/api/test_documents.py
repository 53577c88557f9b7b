"""Invoice and credit-note documents through the server and portal APIs: the HTML page
and the PDF carry every field an EU invoice must show, read back from the PDF's text;
they are rendered from the frozen record; another customer's document, a draft and an
unknown id are "not found"."""

from __future__ import annotations

import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from pypdf import PdfReader

from dunwell.settings import Settings
from ledger.db import make_engine
from ledger.invoices import CustomerTaxDetails, DraftLine, InvoiceStore, InvoiceView
from tax import Address, BuiltinTaxEngine, TaxableLine, TaxCustomer
from tests.api.conftest import (
    AUTH,
    REGISTRATIONS,
    build_app,
    make_settings,
    portal_headers,
    running,
)

ISSUED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PERIOD_END = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)
SELLER = {
    "seller_name": "Example Software Ltd",
    "seller_address": "5 Harbour Road, Dublin 2, D02 AB12, Ireland",
    "seller_vat_id": "IE9876543W",
}


@pytest.fixture
def doc_settings(api_db_url: str, localstripe_url: str) -> Settings:
    return make_settings(api_db_url, localstripe_url, **SELLER)


@pytest.fixture
async def api(doc_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with running(build_app(doc_settings)) as http:
        yield http


@pytest.fixture
def store(api_db_url: str) -> InvoiceStore:
    return InvoiceStore(make_engine(api_db_url))


def _issue(
    store: InvoiceStore,
    *,
    customer_id: str,
    name: str,
    address: str,
    vat_id: str | None = None,
    amount: int = 4900,
) -> InvoiceView:
    draft = store.create_draft(
        key=f"doc-{uuid.uuid4().hex}",
        customer_id=customer_id,
        subscription_id=f"sub_{uuid.uuid4().hex[:10]}",
        currency="EUR",
        lines=[
            DraftLine(
                "line-1",
                "Pro (monthly)",
                amount,
                plan_id="pro-monthly",
                period_start=ISSUED,
                period_end=PERIOD_END,
            )
        ],
        period_start=ISSUED,
        period_end=PERIOD_END,
    )
    quote = BuiltinTaxEngine(seller_country="IE").quote(
        [TaxableLine(line.line_id, line.amount, "EUR", line.tax_behavior) for line in draft.lines],
        TaxCustomer(Address("DE"), vat_id=vat_id),
        REGISTRATIONS,
        ISSUED,
    )
    return store.finalize(
        draft.id,
        quote=quote,
        customer_tax=CustomerTaxDetails("DE", None, vat_id, name, address),
        at=ISSUED,
    )


def _pdf_text(body: bytes) -> str:
    reader = PdfReader(io.BytesIO(body))
    return "\n".join(page.extract_text() for page in reader.pages)


def _fields(invoice: InvoiceView) -> list[str]:
    """What an EU invoice must show, as the documents print it."""
    assert invoice.number is not None
    return [
        # seller: name, address, VAT id (settings)
        "Example Software Ltd",
        "5 Harbour Road",
        "D02 AB12",
        "IE9876543W",
        # sequential number, issue date, supply period
        invoice.number,
        "2026-03-01",
        "2026-03-01 to 2026-04-01",
        # currency and totals
        "EUR",
    ]


async def test_invoice_html_and_pdf_carry_every_eu_field(
    api: httpx.AsyncClient, store: InvoiceStore
) -> None:
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    invoice = _issue(
        store,
        customer_id=customer,
        name="Ada Lovelace",
        address="Invalidenstr. 1, 10115 Berlin, DE",
    )
    expected = [
        *_fields(invoice),
        "Ada Lovelace",
        "Invalidenstr. 1",
        "10115 Berlin",
        # taxable amount and tax per rate: 49.00 EUR at 19 % German VAT
        "19%",
        "49.00 EUR",
        "9.31 EUR",
        "58.31 EUR",
    ]
    page = await api.get(f"/v1/invoices/{invoice.id}/document", headers=AUTH)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "script" not in page.headers["content-security-policy"]
    for field in expected:
        assert field in page.text, field
    assert "<script" not in page.text

    pdf = await api.get(f"/v1/invoices/{invoice.id}/document.pdf", headers=AUTH)
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert (
        pdf.headers["content-disposition"] == f'attachment; filename="invoice-{invoice.number}.pdf"'
    )
    text = _pdf_text(pdf.content)
    for field in [*expected, "Tax per rate"]:
        assert field in text, (field, text)
    # The tax per rate row: jurisdiction, tax, rate, taxable amount, tax amount.
    assert re.search(r"DE\s+VAT\s+19%\s+—\s+49\.00 EUR\s+9\.31 EUR", text), text

    # The same document through the portal, for the invoice's own customer.
    mine = await api.get(
        f"/v1/portal/invoices/{invoice.id}/document.pdf", headers=portal_headers(customer)
    )
    assert mine.status_code == 200
    assert _pdf_text(mine.content) == text


async def test_reverse_charge_invoice_carries_the_mention_and_both_vat_ids(
    api: httpx.AsyncClient, store: InvoiceStore
) -> None:
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    invoice = _issue(
        store,
        customer_id=customer,
        name="Brandt GmbH",
        address="Marienplatz 1, 80331 München, DE",
        vat_id="DE136695976",
    )
    assert invoice.legal_mentions, "the built-in engine reverse-charges a German VAT id"
    pdf = await api.get(
        f"/v1/portal/invoices/{invoice.id}/document.pdf", headers=portal_headers(customer)
    )
    text = _pdf_text(pdf.content)
    for field in [
        *_fields(invoice),
        "Brandt GmbH",
        "80331 München",
        "DE136695976",
        "reverse charge",
        "Article 196 Council Directive 2006/112/EC",
        "0%",
        "49.00 EUR",
    ]:
        assert field in text, (field, text)


async def test_credit_note_names_the_invoice_it_amends(
    api: httpx.AsyncClient, store: InvoiceStore
) -> None:
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    invoice = _issue(store, customer_id=customer, name="Ada Lovelace", address="Invalidenstr. 1")
    note = store.void(
        invoice.id, key=f"void-{invoice.id}", reason="plan change reverted", at=ISSUED
    )
    html = await api.get(f"/v1/credit-notes/{note.id}/document", headers=AUTH)
    assert html.status_code == 200
    assert f"Credit note {note.number}" in html.text
    pdf = await api.get(
        f"/v1/portal/credit-notes/{note.id}/document.pdf", headers=portal_headers(customer)
    )
    assert pdf.status_code == 200
    text = _pdf_text(pdf.content)
    assert invoice.number is not None
    for field in [
        f"Credit note {note.number}",
        f"invoice {invoice.number} of 2026-03-01",
        "plan change reverted",
        "Ada Lovelace",
        "IE9876543W",
        "58.31 EUR",
        "19%",
    ]:
        assert field in text, (field, text)


async def test_documents_are_the_customers_own_and_finalized_only(
    api: httpx.AsyncClient, store: InvoiceStore
) -> None:
    owner = f"cus_{uuid.uuid4().hex[:10]}"
    invoice = _issue(store, customer_id=owner, name="Ada Lovelace", address="Invalidenstr. 1")
    note = store.void(invoice.id, key=f"void-{invoice.id}", reason="test", at=ISSUED)
    draft = store.create_draft(
        key=f"draft-{uuid.uuid4().hex}",
        customer_id=owner,
        subscription_id="sub_draft",
        currency="EUR",
        lines=[DraftLine("l", "Draft line", 100)],
    )
    stranger = portal_headers(f"cus_{uuid.uuid4().hex[:10]}")
    for path in (
        f"/v1/portal/invoices/{invoice.id}/document",
        f"/v1/portal/invoices/{invoice.id}/document.pdf",
        f"/v1/portal/credit-notes/{note.id}/document.pdf",
    ):
        response = await api.get(path, headers=stranger)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] in {"invoice_not_found", "credit_note_not_found"}
    for path in (
        f"/v1/invoices/{draft.id}/document.pdf",
        "/v1/invoices/inv_unknown/document",
        "/v1/credit-notes/cn_unknown/document.pdf",
        # An invoice id is not a credit note's.
        f"/v1/credit-notes/{invoice.id}/document",
    ):
        response = await api.get(path, headers=AUTH)
        assert response.status_code == 404, path
    unauthenticated = await api.get(f"/v1/invoices/{invoice.id}/document")
    assert unauthenticated.status_code == 401
    no_session = await api.get(f"/v1/portal/invoices/{invoice.id}/document.pdf")
    assert no_session.status_code == 401
    bad_id = await api.get("/v1/invoices/bad id!/document", headers=AUTH)
    assert bad_id.status_code in {404, 422}


async def test_the_document_is_rendered_from_the_frozen_record(
    api: httpx.AsyncClient, store: InvoiceStore
) -> None:
    """The buyer's details are those frozen at finalization, whatever changes later."""
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    invoice = _issue(store, customer_id=customer, name="Old Name Ltd", address="Old Street 1")
    first = await api.get(f"/v1/invoices/{invoice.id}/document", headers=AUTH)
    again = await api.get(f"/v1/invoices/{invoice.id}/document", headers=AUTH)
    assert "Old Name Ltd" in first.text and "Old Street 1" in first.text
    assert first.text == again.text
