"""Collection rules of the built-in engine: registrations, reverse charge, exemption
certificates, inclusive prices, rounding."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import pytest

from tax import (
    REVERSE_CHARGE_MENTION,
    BuiltinTaxEngine,
    ExemptionCertificate,
    Registration,
    TaxBehavior,
    TaxReason,
    TaxType,
    VatCheckResult,
)
from tests.tax.conftest import at, customer, expected_tax, line, reg

VALID_DE = "DE136695976"
INVALID_DE = "DE136695977"  # last check digit wrong
OSS = reg("EU", TaxType.VAT)


def only(quote):
    (component,) = quote.lines[0].components
    return component


def evidence_of(quote, kind):
    return [e.detail for e in quote.evidence if e.kind == kind]


# --- registrations ----------------------------------------------------------------


def test_registration_start_date_decides_collection(engine):
    ny = Registration("US-NY", TaxType.SALES_TAX, date(2025, 3, 1), None, "NY-123")
    who = customer("US", "NY")
    before = engine.quote([line(10_000, "USD")], who, [ny], at("2025-02-28"))
    assert only(before).reason is TaxReason.NOT_COLLECTING
    assert before.tax_total == 0
    assert any("not in force on 2025-02-28" in d for d in evidence_of(before, "registration"))
    first_day = engine.quote([line(10_000, "USD")], who, [ny], at("2025-03-01"))
    assert only(first_day).reason is TaxReason.STANDARD_RATED
    assert first_day.tax_total == 400
    assert any("NY-123" in d for d in evidence_of(first_day, "registration"))


def test_registration_end_date_is_the_last_day_collected(engine):
    fr = Registration("FR", TaxType.VAT, date(2020, 1, 1), date(2024, 6, 30), "FR-REG")
    who = customer("FR")
    assert only(engine.quote([line(1_000)], who, [fr], at("2024-06-30"))).tax_amount == 200
    after = only(engine.quote([line(1_000)], who, [fr], at("2024-07-01")))
    assert after.reason is TaxReason.NOT_COLLECTING
    assert "no vat registration" in after.detail


def test_other_countrys_registration_does_not_collect_here(engine):
    quote = engine.quote([line(1_000)], customer("FR"), [reg("DE", TaxType.VAT)], at("2026-01-10"))
    assert only(quote).reason is TaxReason.NOT_COLLECTING


def test_canada_gst_registration_covers_hst_but_not_pst(engine):
    regs = [reg("CA", TaxType.GST)]
    on = engine.quote([line(10_000, "CAD")], customer("CA", "ON"), regs, at("2026-01-10"))
    assert only(on).reason is TaxReason.STANDARD_RATED and on.tax_total == 1_300
    bc = engine.quote([line(10_000, "CAD")], customer("CA", "BC"), regs, at("2026-01-10"))
    gst, pst = bc.lines[0].components
    assert (gst.reason, gst.tax_amount) == (TaxReason.STANDARD_RATED, 500)
    assert (pst.reason, pst.tax_amount) == (TaxReason.NOT_COLLECTING, 0)


def test_a_registration_counts_only_for_its_own_tax_type(engine):
    # A Manitoba RST registration held (wrongly) under CA-BC is no PST registration.
    regs = [reg("CA", TaxType.GST), reg("CA-BC", TaxType.RST)]
    bc = engine.quote([line(10_000, "CAD")], customer("CA", "BC"), regs, at("2026-01-10"))
    gst, pst = bc.lines[0].components
    assert (gst.reason, gst.tax_amount) == (TaxReason.STANDARD_RATED, 500)
    assert (pst.reason, pst.tax_amount) == (TaxReason.NOT_COLLECTING, 0)
    # The same jurisdiction with the right type collects.
    regs = [reg("CA", TaxType.GST), reg("CA-BC", TaxType.PST)]
    bc = engine.quote([line(10_000, "CAD")], customer("CA", "BC"), regs, at("2026-01-10"))
    assert [c.tax_amount for c in bc.lines[0].components] == [500, 700]


def test_a_registration_without_a_tax_type_counts_for_every_type_there(engine):
    regs = [reg("CA", TaxType.GST), reg("CA-BC")]
    bc = engine.quote([line(10_000, "CAD")], customer("CA", "BC"), regs, at("2026-01-10"))
    assert [c.reason for c in bc.lines[0].components] == [TaxReason.STANDARD_RATED] * 2


@pytest.mark.parametrize(("region", "tax_type"), [("BC", TaxType.PST), ("QC", TaxType.QST)])
def test_canada_gst_registration_in_a_province_is_no_provincial_registration(
    engine, region, tax_type
):
    # GST and HST are one federal registration; PST and QST are the province's own.
    regs = [
        reg("CA", TaxType.GST),
        reg(f"CA-{region}", TaxType.GST),
        reg(f"CA-{region}", TaxType.HST),
    ]
    quote = engine.quote([line(10_000, "CAD")], customer("CA", region), regs, at("2026-01-10"))
    gst, provincial = quote.lines[0].components
    assert gst.reason is TaxReason.STANDARD_RATED
    assert provincial.tax_type is tax_type
    assert (provincial.reason, provincial.tax_amount) == (TaxReason.NOT_COLLECTING, 0)


def test_canada_hst_registration_counts_as_the_federal_gst(engine):
    quote = engine.quote(
        [line(10_000, "CAD")], customer("CA", "ON"), [reg("CA", TaxType.HST)], at("2026-01-10")
    )
    assert only(quote).reason is TaxReason.STANDARD_RATED and quote.tax_total == 1_300


def test_unknown_place_without_registration_says_not_collecting(engine, registrations):
    quote = engine.quote([line(5_000, "BRL")], customer("BR"), registrations, at("2026-01-10"))
    component = only(quote)
    assert component.reason is TaxReason.NOT_COLLECTING
    assert component.tax_type is None
    assert "no registration in BR" in component.detail


# --- EU reverse charge ----------------------------------------------------------------


def test_valid_vat_id_from_other_member_state_is_reverse_charged(engine):
    quote = engine.quote([line(10_000)], customer("DE", vat_id=VALID_DE), [OSS], at("2026-01-10"))
    component = only(quote)
    assert component.reason is TaxReason.REVERSE_CHARGE
    assert (component.rate_ppm, component.tax_amount, component.taxable_amount) == (0, 0, 10_000)
    assert quote.legal_mentions == (REVERSE_CHARGE_MENTION,)
    assert "Article 196 Council Directive 2006/112/EC" in REVERSE_CHARGE_MENTION
    assert any("reverse charge" in d for d in evidence_of(quote, "vat_id"))


def test_invalid_vat_id_is_standard_rated_and_says_why(engine):
    quote = engine.quote([line(10_000)], customer("DE", vat_id=INVALID_DE), [OSS], at("2026-01-10"))
    component = only(quote)
    assert component.reason is TaxReason.STANDARD_RATED
    assert component.tax_amount == 1_900
    assert quote.legal_mentions == ()
    assert any(d.startswith("invalid") for d in evidence_of(quote, "vat_id"))


def test_vat_id_of_sellers_own_member_state_is_domestic(engine):
    quote = engine.quote(
        [line(10_000)], customer("IE", vat_id="IE6388047V"), [OSS], at("2026-01-10")
    )
    assert only(quote).reason is TaxReason.STANDARD_RATED
    assert quote.tax_total == 2_300
    assert any("domestic" in d for d in evidence_of(quote, "vat_id"))


def test_greek_el_prefix_maps_to_gr(engine):
    quote = engine.quote(
        [line(10_000)], customer("GR", vat_id="EL094259216"), [OSS], at("2026-01-10")
    )
    assert only(quote).reason is TaxReason.REVERSE_CHARGE


def test_seller_outside_eu_with_eu_registration_reverse_charges():
    outside = BuiltinTaxEngine(seller_country=None)
    quote = outside.quote(
        [line(10_000)], customer("FR", vat_id="FR40303265045"), [OSS], at("2026-01-10")
    )
    assert only(quote).reason is TaxReason.REVERSE_CHARGE
    assert any("outside the EU" in d for d in evidence_of(quote, "vat_id"))


def test_reverse_charge_needs_some_eu_vat_registration(engine):
    quote = engine.quote(
        [line(10_000)], customer("DE", vat_id=VALID_DE), [reg("GB")], at("2026-01-10")
    )
    component = only(quote)
    assert component.reason is TaxReason.NOT_COLLECTING
    assert "self-accounts" in component.detail
    assert quote.legal_mentions == ()


def test_vat_id_outside_the_eu_is_ignored_with_evidence(engine, registrations):
    quote = engine.quote(
        [line(10_000, "GBP")], customer("GB", vat_id=VALID_DE), registrations, at("2026-01-10")
    )
    assert only(quote).reason is TaxReason.STANDARD_RATED
    assert evidence_of(quote, "vat_id") == ["customer outside the EU; VAT ID not used"]


@dataclass
class FakeVies:
    """Stands in for the European Commission's VIES service."""

    valid: bool
    calls: list[str] = field(default_factory=list)

    def check(self, vat_id: str, at: datetime) -> VatCheckResult:
        self.calls.append(vat_id)
        return VatCheckResult(vat_id, self.valid, at, "vies", consultation_number="WAPIAAAAXYZ")


@pytest.mark.parametrize("valid", [True, False])
def test_live_checker_answer_is_recorded_as_proof(valid):
    vies = FakeVies(valid)
    checked = BuiltinTaxEngine(seller_country="IE", vat_checker=vies)
    quote = checked.quote(
        [line(10_000)], customer("DE", vat_id="de 136 695 976"), [OSS], at("2026-01-10")
    )
    assert vies.calls == [VALID_DE]
    assert quote.vat_check is not None and quote.vat_check.valid is valid
    assert quote.vat_check.consultation_number == "WAPIAAAAXYZ"
    assert any("WAPIAAAAXYZ" in d for d in evidence_of(quote, "vies"))
    expected = TaxReason.REVERSE_CHARGE if valid else TaxReason.STANDARD_RATED
    assert only(quote).reason is expected


def test_live_checker_is_not_asked_for_malformed_ids():
    vies = FakeVies(True)
    checked = BuiltinTaxEngine(seller_country="IE", vat_checker=vies)
    checked.quote([line(10_000)], customer("DE", vat_id=INVALID_DE), [OSS], at("2026-01-10"))
    assert vies.calls == []


def test_no_live_check_by_default(engine):
    quote = engine.quote([line(10_000)], customer("DE", vat_id=VALID_DE), [OSS], at("2026-01-10"))
    assert quote.vat_check is None


# --- exemption certificates ------------------------------------------------------------

TX_CERT = ExemptionCertificate(
    "US-TX", "TX-EX-1", date(2025, 1, 1), date(2025, 12, 31), "s3://certs/tx-ex-1.pdf"
)


@pytest.mark.parametrize(
    ("day", "reason", "evidence_start"),
    [
        ("2024-12-31", TaxReason.STANDARD_RATED, "not applied: valid only from 2025-01-01"),
        ("2025-01-01", TaxReason.CUSTOMER_EXEMPT, "applied"),
        ("2025-12-31", TaxReason.CUSTOMER_EXEMPT, "applied"),
        ("2026-01-01", TaxReason.STANDARD_RATED, "not applied: expired on 2025-12-31"),
    ],
)
def test_exemption_certificate_before_during_after(
    engine, registrations, day, reason, evidence_start
):
    who = customer("US", "TX", exemption_certificates=(TX_CERT,))
    quote = engine.quote([line(10_000, "USD")], who, registrations, at(day))
    component = only(quote)
    assert component.reason is reason
    assert component.tax_amount == (0 if reason is TaxReason.CUSTOMER_EXEMPT else 500)
    (certificate_evidence,) = evidence_of(quote, "exemption_certificate")
    assert certificate_evidence.startswith(evidence_start)
    assert "s3://certs/tx-ex-1.pdf" in certificate_evidence


def test_certificate_for_another_jurisdiction_does_not_apply(engine, registrations):
    who = customer("US", "NY", exemption_certificates=(TX_CERT,))
    quote = engine.quote([line(10_000, "USD")], who, registrations, at("2025-06-01"))
    assert only(quote).tax_amount == 400
    assert evidence_of(quote, "exemption_certificate") == [
        "not applied: issued for US-TX, not for the taxes of US-NY (s3://certs/tx-ex-1.pdf)"
    ]


def test_a_certificate_after_one_for_another_jurisdiction_still_applies(engine, registrations):
    other = ExemptionCertificate("US-CA", "CA-EX-1", date(2020, 1, 1), None, "doc-ca")
    texas = ExemptionCertificate("US-TX", "TX-EX-2", date(2020, 1, 1), None, "doc-tx")
    who = customer("US", "TX", exemption_certificates=(other, texas))
    quote = engine.quote([line(10_000, "USD")], who, registrations, at("2026-01-10"))
    assert (only(quote).reason, quote.tax_total) == (TaxReason.CUSTOMER_EXEMPT, 0)
    details = evidence_of(quote, "exemption_certificate")
    assert any(d.startswith("applied") and "TX-EX-2" in d for d in details)
    assert any(d.startswith("not applied: issued for US-CA") for d in details)


def test_pst_certificate_exempts_only_the_pst(engine, registrations):
    cert = ExemptionCertificate("CA-BC", "PST-1", date(2020, 1, 1), None, "doc-1")
    who = customer("CA", "BC", exemption_certificates=(cert,))
    gst, pst = (
        engine.quote([line(10_000, "CAD")], who, registrations, at("2026-01-10"))
        .lines[0]
        .components
    )
    assert (gst.reason, gst.tax_amount) == (TaxReason.STANDARD_RATED, 500)
    assert (pst.reason, pst.tax_amount) == (TaxReason.CUSTOMER_EXEMPT, 0)


# --- prices and rounding --------------------------------------------------------------


def test_tax_inclusive_price_splits_into_net_and_tax(engine, registrations):
    quote = engine.quote(
        [line(12_000, behavior=TaxBehavior.INCLUSIVE)],
        customer("FR"),
        registrations,
        at("2026-01-10"),
    )
    (q,) = quote.lines
    assert (q.amount_excluding_tax, q.tax_amount, q.amount_including_tax) == (10_000, 2_000, 12_000)
    assert only(quote).taxable_amount == 10_000


def test_tax_inclusive_canada_two_components_sum_to_the_price(engine, registrations):
    quote = engine.quote(
        [line(11_498, "CAD", behavior=TaxBehavior.INCLUSIVE)],
        customer("CA", "QC"),
        registrations,
        at("2026-01-10"),
    )
    (q,) = quote.lines
    assert [c.tax_amount for c in q.components] == [500, 998]
    assert q.amount_excluding_tax == 10_000
    assert q.amount_including_tax == 11_498


def test_mixed_exclusive_and_inclusive_lines(engine, registrations):
    lines = [line(10_000, line_id="a"), line(12_000, line_id="b", behavior=TaxBehavior.INCLUSIVE)]
    quote = engine.quote(lines, customer("FR"), registrations, at("2026-01-10"))
    assert quote.subtotal_excluding_tax == 20_000
    assert quote.tax_total == 4_000
    assert quote.total_including_tax == 24_000


@pytest.mark.parametrize(
    ("amount", "tax"), [(999, 100), (1_005, 101), (1_004, 100), (-1_005, -101), (1, 0), (5, 1)]
)
def test_jpy_rounds_to_whole_yen_half_up(engine, registrations, amount, tax):
    quote = engine.quote([line(amount, "JPY")], customer("JP"), registrations, at("2026-01-10"))
    assert quote.currency_exponent == 0
    assert quote.tax_total == tax == expected_tax(amount, "10")


def test_jpy_inclusive(engine, registrations):
    quote = engine.quote(
        [line(1_100, "JPY", behavior=TaxBehavior.INCLUSIVE)],
        customer("JP"),
        registrations,
        at("2026-01-10"),
    )
    assert (quote.subtotal_excluding_tax, quote.tax_total) == (1_000, 100)


def test_half_cent_rounds_up_and_credit_mirrors_it(engine, registrations):
    # 19 % of 50 cents = 9.5 cents
    pos = engine.quote([line(50)], customer("DE"), registrations, at("2026-01-10"))
    neg = engine.quote([line(-50)], customer("DE"), registrations, at("2026-01-10"))
    assert (pos.tax_total, neg.tax_total) == (10, -10)


def test_quote_records_version_rounding_and_time(engine, registrations):
    when = at("2026-01-10")
    quote = engine.quote([line(100)], customer("DE"), registrations, when)
    assert quote.rate_table_version == engine.rate_table.version
    assert quote.rate_table_version.startswith("sha256:")
    assert "half-up" in quote.rounding_rule
    assert quote.at == when
    assert quote.engine == "builtin"
