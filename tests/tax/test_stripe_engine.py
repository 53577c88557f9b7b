"""StripeTaxEngine against the real ``stripe`` SDK talking to a local HTTP server that
plays Stripe-shaped Tax Calculation payloads (tests/tax/payloads, written to the shape
of the Stripe API reference for ``tax.calculation`` since no fake Stripe implements
Stripe Tax)."""

from __future__ import annotations

import asyncio
import json
from datetime import date

import pytest
import stripe

from activities.stripe_tax import StripeTaxEngine
from activities.tax_engines import make_engine
from tax import (
    REVERSE_CHARGE_MENTION,
    ExemptionCertificate,
    MissingAddressError,
    TaxBehavior,
    TaxInputError,
    TaxProviderError,
    TaxReason,
    TaxType,
    aquote,
)
from tax.model import Address, TaxCustomer
from tests.tax.conftest import PAYLOADS, at, customer, line

CALCULATIONS = "/v1/tax/calculations"
WHEN = at("2026-01-10")


@pytest.fixture
def stripe_engine(recorded_stripe) -> StripeTaxEngine:
    client = stripe.StripeClient(
        "sk_test_recorded", base_addresses={"api": recorded_stripe.base}, max_network_retries=0
    )
    return StripeTaxEngine(client)


def test_reverse_charge_mapping_and_request(stripe_engine, recorded_stripe):
    recorded_stripe.answer("POST", CALCULATIONS, "calc_de_reverse_charge.json")
    who = TaxCustomer(Address("DE", postal_code="10115", city="Berlin"), vat_id="DE136695976")
    quote = stripe_engine.quote([line(10_000)], who, [], WHEN)

    (component,) = quote.lines[0].components
    assert component.reason is TaxReason.REVERSE_CHARGE
    assert (component.jurisdiction, component.tax_type) == ("DE", TaxType.VAT)
    assert (component.rate_ppm, component.tax_amount, component.taxable_amount) == (0, 0, 10_000)
    assert quote.legal_mentions == (REVERSE_CHARGE_MENTION,)
    assert quote.provider_ref == "taxcalc_DE_reverse"
    assert quote.engine == "stripe"
    assert (quote.subtotal_excluding_tax, quote.tax_total, quote.total_including_tax) == (
        10_000,
        0,
        10_000,
    )

    ((method, path, form),) = recorded_stripe.requests
    assert (method, path) == ("POST", CALCULATIONS)
    assert form["currency"] == "eur"
    assert form["line_items[0][amount]"] == "10000"
    assert form["line_items[0][reference]"] == "l1"
    assert form["line_items[0][tax_behavior]"] == "exclusive"
    assert form["line_items[0][tax_code]"] == "txcd_10103001"
    assert form["customer_details[address][country]"] == "DE"
    assert form["customer_details[address][postal_code]"] == "10115"
    assert form["customer_details[address_source]"] == "billing"
    assert form["customer_details[tax_ids][0][type]"] == "eu_vat"
    assert form["customer_details[tax_ids][0][value]"] == "DE136695976"
    assert form["tax_date"] == str(int(WHEN.timestamp()))
    assert form["expand[0]"] == "line_items.data.tax_breakdown"


def test_not_collecting_mapping_with_paged_line_items(stripe_engine, recorded_stripe):
    recorded_stripe.answer("POST", CALCULATIONS, "calc_us_not_collecting.json")
    recorded_stripe.answer(
        "GET",
        f"{CALCULATIONS}/taxcalc_US_not_collecting/line_items",
        "calc_us_not_collecting_page2.json",
    )
    lines = [line(10_000, "USD", "seat"), line(2_500, "USD", "addon")]
    quote = stripe_engine.quote(lines, customer("US", "TX"), [], WHEN)

    assert [q.line_id for q in quote.lines] == ["seat", "addon"]
    for q in quote.lines:
        (component,) = q.components
        assert component.reason is TaxReason.NOT_COLLECTING
        assert component.jurisdiction == "US-TX"
        assert component.tax_type is TaxType.SALES_TAX
        assert "not_collecting" in component.detail
    assert quote.tax_total == 0
    assert quote.subtotal_excluding_tax == 12_500
    assert quote.jurisdiction == "US-TX"
    page_request = recorded_stripe.requests[1]
    assert page_request[0] == "GET"
    assert page_request[2]["starting_after"] == "tax_li_US1"


def test_inclusive_gst_and_qst_components(stripe_engine, recorded_stripe):
    recorded_stripe.answer("POST", CALCULATIONS, "calc_ca_qc_inclusive.json")
    quote = stripe_engine.quote(
        [line(11_498, "CAD", behavior=TaxBehavior.INCLUSIVE)], customer("CA", "QC"), [], WHEN
    )
    (q,) = quote.lines
    assert [(c.jurisdiction, c.tax_type, c.rate_ppm, c.tax_amount) for c in q.components] == [
        ("CA", TaxType.GST, 50_000, 500),
        ("CA-QC", TaxType.QST, 99_750, 998),
    ]
    assert (q.amount_excluding_tax, q.tax_amount, q.amount_including_tax) == (10_000, 1_498, 11_498)
    assert recorded_stripe.requests[0][2]["line_items[0][tax_behavior]"] == "inclusive"


def test_certificate_in_force_is_sent_as_customer_exempt(stripe_engine, recorded_stripe):
    recorded_stripe.answer("POST", CALCULATIONS, "calc_us_ny_customer_exempt.json")
    cert = ExemptionCertificate("US-NY", "ST-120-1", date(2025, 1, 1), None, "doc://st-120")
    quote = stripe_engine.quote(
        [line(10_000, "USD")], customer("US", "NY", exemption_certificates=(cert,)), [], WHEN
    )
    assert (
        recorded_stripe.requests[0][2]["customer_details[taxability_override]"] == "customer_exempt"
    )
    assert quote.lines[0].components[0].reason is TaxReason.CUSTOMER_EXEMPT
    assert any(
        e.kind == "exemption_certificate" and e.detail.startswith("applied") for e in quote.evidence
    )


def test_expired_certificate_is_not_sent(stripe_engine, recorded_stripe):
    recorded_stripe.answer("POST", CALCULATIONS, "calc_us_not_collecting.json")
    recorded_stripe.answer(
        "GET",
        f"{CALCULATIONS}/taxcalc_US_not_collecting/line_items",
        "calc_us_not_collecting_page2.json",
    )
    cert = ExemptionCertificate("US-TX", "TX-1", date(2024, 1, 1), date(2024, 12, 31), "doc")
    who = customer("US", "TX", exemption_certificates=(cert,))
    quote = stripe_engine.quote(
        [line(10_000, "USD", "seat"), line(2_500, "USD", "addon")], who, [], WHEN
    )
    assert "customer_details[taxability_override]" not in recorded_stripe.requests[0][2]
    assert any(e.detail.startswith("not applied") for e in quote.evidence)


def test_stripe_error_becomes_typed_provider_error(stripe_engine, recorded_stripe):
    recorded_stripe.answer(
        "POST", CALCULATIONS, "error_customer_tax_location_invalid.json", status=400
    )
    with pytest.raises(TaxProviderError) as caught:
        stripe_engine.quote([line(100, "USD")], customer("US", "NY"), [], WHEN)
    assert caught.value.code == "customer_tax_location_invalid"


def test_breakdown_that_does_not_add_up_is_refused(stripe_engine, recorded_stripe):
    recorded_stripe.answer("POST", CALCULATIONS, "calc_ca_qc_inclusive.json")
    # the recorded line is 11 498; a different amount means Stripe answered another question
    with pytest.raises(TaxProviderError):
        stripe_engine.quote(
            [line(11_000, "CAD", behavior=TaxBehavior.INCLUSIVE)], customer("CA", "QC"), [], WHEN
        )


def test_bad_input_is_refused_before_calling_stripe(stripe_engine, recorded_stripe):
    with pytest.raises(MissingAddressError):
        stripe_engine.quote([line(100)], TaxCustomer(None), [], WHEN)
    with pytest.raises(TaxInputError, match="negative"):
        stripe_engine.quote([line(-100)], customer("DE"), [], WHEN)
    assert recorded_stripe.requests == []


def test_factory_and_async_wrapper(recorded_stripe):
    engine = make_engine("stripe", api_key="sk_test_recorded", api_base=recorded_stripe.base)
    assert isinstance(engine, StripeTaxEngine)
    recorded_stripe.answer("POST", CALCULATIONS, "calc_de_reverse_charge.json")
    who = customer("DE", vat_id="DE136695976")
    quote = asyncio.run(aquote(engine, [line(10_000)], who, [], WHEN))
    assert quote.provider_ref == "taxcalc_DE_reverse"


def test_null_rate_details_and_unnamed_tax_types(stripe_engine, recorded_stripe):
    payload = json.loads((PAYLOADS / "calc_us_ny_customer_exempt.json").read_text())
    item = payload["line_items"]["data"][0]
    item["amount_tax"] = 150
    payload["tax_amount_exclusive"] = 150
    item["tax_breakdown"] = [
        {
            **item["tax_breakdown"][0],
            "tax_rate_details": None,
            "taxability_reason": "not_subject_to_tax",
        },
        {
            "amount": 150,
            "jurisdiction": {
                "country": "US",
                "display_name": "NYC",
                "level": "city",
                "state": "NY",
            },
            "sourcing": "destination",
            "tax_rate_details": {
                "display_name": "Amusement",
                "percentage_decimal": "1.5",
                "tax_type": "amusement_tax",
            },
            "taxability_reason": "standard_rated",
            "taxable_amount": 10_000,
        },
    ]
    recorded_stripe.answer("POST", CALCULATIONS, payload)
    quote = stripe_engine.quote([line(10_000, "USD")], customer("US", "NY"), [], WHEN)
    untaxed, other = quote.lines[0].components
    assert (untaxed.tax_type, untaxed.rate_ppm, untaxed.reason) == (None, 0, TaxReason.NOT_TAXABLE)
    assert (other.tax_type, other.rate_ppm, other.tax_amount) == (TaxType.OTHER, 15_000, 150)
    assert "type=amusement_tax" in other.detail
    assert quote.tax_total == 150
