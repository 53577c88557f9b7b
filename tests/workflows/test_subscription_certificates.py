"""Exemption certificates recorded in the compliance ledger reach every renewal's quote:
one valid on the renewal day makes the line 0 % ``customer_exempt`` with the
certificate as evidence; one that expired before it does not."""

from __future__ import annotations

import uuid
from datetime import timedelta

from ledger.compliance import ComplianceLedger
from tax import ExemptionCertificate
from tests.workflows.harness import Billing, eventually

PRO_EUR = 2900
DE_VAT_ON_PRO = 551  # 19 % of 29.00 EUR


async def _renewed_with(billing: Billing, valid_to_days: int | None) -> tuple[str, str]:
    """Subscribe, record a German certificate for the customer valid from the start for
    ``valid_to_days`` days (None: open), and renew once. (certificate number, renewal id)."""
    start = await billing.soon()
    handle = await billing.subscribe(plan_id="pro-monthly", start_at=start)
    await billing.sleep_until(start + timedelta(minutes=1))
    first = await eventually(handle, lambda s: s.invoice_count == 1)
    assert first.customer is not None and first.period_end is not None
    number = f"EXEMPT-{uuid.uuid4().hex[:8].upper()}"
    valid_to = None if valid_to_days is None else start.date() + timedelta(days=valid_to_days)
    ComplianceLedger(billing.store.engine).record_exemption_certificate(
        first.customer.customer_id,
        ExemptionCertificate("DE", number, start.date() - timedelta(days=1), valid_to, "doc://ex"),
        at=await billing.env.get_current_time(),
    )
    await billing.sleep_until(first.period_end + timedelta(minutes=1))
    renewed = await eventually(handle, lambda s: s.invoice_count == 2)
    return number, renewed.invoices[-1].invoice_id


async def test_a_certificate_valid_at_the_renewal_makes_it_exempt(billing: Billing) -> None:
    number, invoice_id = await _renewed_with(billing, None)
    invoice = billing.store.get(invoice_id)
    assert (invoice.subtotal, invoice.tax_total, invoice.total) == (PRO_EUR, 0, PRO_EUR)
    (line,) = invoice.lines
    (component,) = line.components
    assert (component.jurisdiction, component.reason, component.rate_ppm) == (
        "DE",
        "customer_exempt",
        0,
    )
    assert number in component.detail
    (record,) = ComplianceLedger(billing.store.engine).tax_line_records(document_id=invoice_id)
    assert record.reason == "customer_exempt" and number in record.detail


async def test_an_expired_certificate_is_not_applied(billing: Billing) -> None:
    number, invoice_id = await _renewed_with(billing, 3)  # ends before the period does
    invoice = billing.store.get(invoice_id)
    assert (invoice.subtotal, invoice.tax_total) == (PRO_EUR, DE_VAT_ON_PRO)
    (line,) = invoice.lines
    (component,) = line.components
    assert (component.reason, component.rate_ppm) == ("standard_rated", 190_000)
    assert number not in component.detail
