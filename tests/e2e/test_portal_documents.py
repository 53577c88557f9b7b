"""Invoice documents from the portal page, in headless Chromium against the real API,
workflow, ledger and localstripe: the PDF downloaded and its text checked field by
field, and the HTML view opened, looked at and screenshotted."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from playwright.async_api import expect
from pypdf import PdfReader

from tests.e2e.conftest import Stack
from tests.e2e.support import chromium, open_portal, read, subscriber

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

BRANDT = {
    "name": "Brandt GmbH",
    "email": "billing@brandt.example.test",
    "tax_id": "DE136695976",
    "address": {
        "country": "DE",
        "postal_code": "80331",
        "city": "München",
        "line1": "Marienplatz 1",
    },
}


async def test_invoice_downloaded_as_pdf_and_viewed_as_html(e2e_stack: Stack) -> None:
    settings = e2e_stack.app.state.settings
    async with httpx.AsyncClient(base_url=e2e_stack.base_url, timeout=60) as http:
        sid, url, _ = await subscriber(e2e_stack, http, plan_id="pro-monthly", **BRANDT)
        (invoice,) = (await read(http, sid))["recent_invoices"]
        errors: list[str] = []
        async with chromium() as browser:
            context = await browser.new_context(accept_downloads=True)
            page = await open_portal(context, url, errors)
            row = page.locator(f'#invoices tbody tr[data-invoice-id="{invoice["invoice_id"]}"]')
            await expect(row).to_contain_text(invoice["number"])

            async with page.expect_download() as info:
                await row.get_by_role("button", name=re.compile("as PDF$")).click()
            download = await info.value
            assert download.suggested_filename == f"invoice-{invoice['number']}.pdf"
            path = await download.path()
            text = "\n".join(
                p.extract_text() for p in PdfReader(io.BytesIO(path.read_bytes())).pages
            )
            period = f"{invoice['period_start'][:10]} to {invoice['period_end'][:10]}"
            for field in [
                f"Invoice {invoice['number']}",
                settings.seller_name,
                settings.seller_vat_id,
                *[part.strip() for part in settings.seller_address.split(",")],
                "Brandt GmbH",
                "Marienplatz 1",
                "80331 München",
                "DE136695976",
                invoice["period_start"][:10],
                period,
                "Tax per rate",
                "reverse charge",
                "Article 196 Council Directive 2006/112/EC",
                "29.00 EUR",
                "Total (EUR)",
                "Amount due",
            ]:
                assert field in text, (field, text)
            assert re.search(r"DE\s+VAT\s+0%\s+reverse charge\s+29\.00 EUR\s+0\.00 EUR", text), text

            async with page.expect_popup() as popup:
                await row.get_by_role("button", name=re.compile("^View")).click()
            document = await popup.value
            await document.wait_for_load_state()
            await expect(document.locator("h1")).to_have_text(f"Invoice {invoice['number']}")
            await expect(document.locator("main")).to_contain_text("Reverse charge")
            await expect(document.locator("main")).to_contain_text("DE136695976")
            shot = e2e_stack.screenshots / "invoice.png"
            await document.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 20_000
            assert errors == []
